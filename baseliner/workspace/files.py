"""
The editor's files: SFTP as the expert user, confined to the expert's home.

Every path from the page is relative to the home folder. It may not be absolute or contain
``..``; after symlinks are resolved on the machine (SFTP realpath) it must still lie inside
the home folder; only regular files are read or written (no devices, FIFOs or sockets).
Saves are atomic (a temporary file in the same folder, then an atomic rename) and refuse to
overwrite a file that changed since the editor opened it, unless asked to.
"""
from __future__ import annotations

import errno
import hashlib
import posixpath
import secrets
import stat
from dataclasses import dataclass

import paramiko

MAX_EDIT_BYTES = 2 * 1024 * 1024
MAX_LIST = 2000


class FileError(Exception):
    """Refused or failed; ``str()`` is shown to the expert, ``status`` is the HTTP status."""

    status = 400

    def __init__(self, message: str, status: int | None = None, **data):
        super().__init__(message)
        if status is not None:
            self.status = status
        self.data = data


class Conflict(FileError):
    status = 409


def clean_relpath(path, *, allow_home: bool = False) -> str:
    """'a/./b/' -> 'a/b'; refuses absolute paths, '..', NUL and the empty path."""
    if not isinstance(path, str):
        raise FileError("A path is required.")
    if "\x00" in path or len(path) > 4096:
        raise FileError("That path is not valid.")
    if path.startswith("/") or path.startswith("~"):
        raise FileError("Paths are relative to your home folder; absolute paths are not allowed.")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise FileError("'..' is not allowed in paths: the editor works inside your home folder only.")
    if not parts and not allow_home:
        raise FileError("A file or folder name is required.")
    return "/".join(parts)


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def version_of(st: paramiko.SFTPAttributes, data: bytes) -> dict:
    return {"mtime": int(st.st_mtime or 0), "size": int(st.st_size or 0), "sha256": hashlib.sha256(data).hexdigest()}


def _sftp_error(exc: OSError, rel: str) -> FileError:
    if isinstance(exc, FileNotFoundError) or getattr(exc, "errno", None) == errno.ENOENT:
        return FileError(f"'{rel}' does not exist.", 404)
    if isinstance(exc, PermissionError) or getattr(exc, "errno", None) == errno.EACCES:
        return FileError(f"Permission denied for '{rel}'.", 403)
    return FileError(f"'{rel}': {exc.strerror or exc}", 400)


@dataclass
class HomeFiles:
    sftp: paramiko.SFTPClient
    home: str

    def __post_init__(self):
        self.home = self.sftp.normalize(self.home).rstrip("/") or "/"

    # --- confinement ---
    def _inside(self, resolved: str) -> bool:
        return resolved == self.home or resolved.startswith(self.home + "/")

    def _resolve(self, rel: str) -> str:
        """The real path of an existing ``rel`` (symlinks followed), refused outside home."""
        try:
            resolved = self.sftp.normalize(posixpath.join(self.home, rel) if rel else self.home)
        except OSError as exc:
            raise _sftp_error(exc, rel) from None
        if not self._inside(resolved):
            raise FileError(f"'{rel}' points outside your home folder; the editor cannot follow it.", 403)
        return resolved

    def _parent_and_name(self, rel: str) -> tuple[str, str]:
        """For a path that may not exist yet: its resolved parent folder and its name."""
        parent_rel, name = posixpath.split(rel)
        parent = self._resolve(parent_rel)
        try:
            if not stat.S_ISDIR(self.sftp.stat(parent).st_mode):
                raise FileError(f"'{parent_rel}' is not a folder.")
        except OSError as exc:
            raise _sftp_error(exc, parent_rel) from None
        return parent, name

    def _lstat(self, path: str):
        try:
            return self.sftp.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if getattr(exc, "errno", None) == errno.ENOENT:
                return None
            raise

    def _regular(self, rel: str) -> tuple[str, paramiko.SFTPAttributes]:
        resolved = self._resolve(rel)
        try:
            st = self.sftp.stat(resolved)
        except OSError as exc:
            raise _sftp_error(exc, rel) from None
        if stat.S_ISDIR(st.st_mode):
            raise FileError(f"'{rel}' is a folder.")
        if not stat.S_ISREG(st.st_mode):
            raise FileError(f"'{rel}' is not a regular file (a device, pipe or socket); the editor only opens files.", 415)
        return resolved, st

    def _read_bytes(self, path: str, limit: int) -> bytes:
        with self.sftp.open(path, "rb") as f:
            f.prefetch()
            return f.read(limit + 1)

    # --- operations ---
    def list(self, rel: str) -> dict:
        resolved = self._resolve(rel)
        try:
            entries = self.sftp.listdir_attr(resolved)
        except OSError as exc:
            raise _sftp_error(exc, rel or ".") from None
        items = []
        for e in sorted(entries, key=lambda e: e.filename.lower())[:MAX_LIST]:
            mode = e.st_mode or 0
            kind = "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "link" if stat.S_ISLNK(mode) else "other"
            if kind == "link":
                try:
                    target = self.sftp.normalize(posixpath.join(resolved, e.filename))
                    if self._inside(target):
                        kind = "dir" if stat.S_ISDIR(self.sftp.stat(target).st_mode) else "file"
                        kind = f"link-{kind}"
                    else:
                        kind = "link-outside"
                except OSError:
                    kind = "link-broken"
            items.append({"name": e.filename, "path": posixpath.join(rel, e.filename) if rel else e.filename,
                          "type": kind, "size": e.st_size or 0, "mtime": int(e.st_mtime or 0)})
        return {"path": rel, "entries": items, "truncated": len(entries) > MAX_LIST}

    def read(self, rel: str) -> dict:
        resolved, st = self._regular(rel)
        if (st.st_size or 0) > MAX_EDIT_BYTES:
            raise FileError(f"'{rel}' is {_mb(st.st_size)}: too large to open in the editor (the limit is "
                            f"{_mb(MAX_EDIT_BYTES)}). Use the terminal for it.", 413)
        try:
            data = self._read_bytes(resolved, MAX_EDIT_BYTES)
        except OSError as exc:
            raise _sftp_error(exc, rel) from None
        if len(data) > MAX_EDIT_BYTES:
            raise FileError(f"'{rel}' is too large to open in the editor (the limit is {_mb(MAX_EDIT_BYTES)}).", 413)
        try:
            if b"\x00" in data[:65536]:
                raise UnicodeDecodeError("utf-8", b"", 0, 1, "NUL")
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise FileError(f"'{rel}' looks like a binary file; the editor opens text (UTF-8) files only.", 415) from None
        return {"path": rel, "content": text, "version": version_of(st, data)}

    def write(self, rel: str, content: str, *, expected: dict | None, overwrite: bool = False) -> dict:
        if not isinstance(content, str):
            raise FileError("The file content must be text.")
        data = content.encode("utf-8")
        if len(data) > MAX_EDIT_BYTES:
            raise FileError(f"This file would be {_mb(len(data))}; the editor saves files up to {_mb(MAX_EDIT_BYTES)}.", 413)
        parent, name = self._parent_and_name(rel)
        target = posixpath.join(parent, name)
        mode = None
        existing = self._lstat(target)
        if existing is not None:
            target, st = self._regular(rel)  # follows a symlink that stays inside home
            mode = stat.S_IMODE(st.st_mode)
            if not overwrite:
                current = version_of(st, self._read_bytes(target, MAX_EDIT_BYTES))
                if expected is None:
                    raise Conflict(f"'{rel}' already exists.", current=current)
                if not isinstance(expected, dict) or expected.get("sha256") != current["sha256"]:
                    raise Conflict(f"'{rel}' changed on the machine since you opened it.", current=current)
        elif expected is not None and not overwrite:
            raise Conflict(f"'{rel}' was deleted or renamed on the machine since you opened it.", current=None)
        tmp = posixpath.join(posixpath.dirname(target), f".{name[:100]}.bl-save-{secrets.token_hex(4)}")
        try:
            with self.sftp.open(tmp, "wbx") as f:
                f.set_pipelined(True)
                f.write(data)
            if mode is not None:
                self.sftp.chmod(tmp, mode)
            self.sftp.posix_rename(tmp, target)
        except OSError as exc:
            try:
                self.sftp.remove(tmp)
            except OSError:
                pass
            raise _sftp_error(exc, rel) from None
        st = self.sftp.stat(target)
        return {"path": rel, "version": version_of(st, data)}

    def create(self, rel: str, kind: str) -> dict:
        parent, name = self._parent_and_name(rel)
        target = posixpath.join(parent, name)
        if self._lstat(target) is not None:
            raise Conflict(f"'{rel}' already exists.")
        try:
            if kind == "dir":
                self.sftp.mkdir(target)
            elif kind == "file":
                with self.sftp.open(target, "wbx"):
                    pass
            else:
                raise FileError("Create a 'file' or a 'dir'.")
        except OSError as exc:
            raise _sftp_error(exc, rel) from None
        return {"path": rel, "type": kind}

    def rename(self, rel: str, to: str) -> dict:
        src_parent, src_name = self._parent_and_name(rel)
        src = posixpath.join(src_parent, src_name)
        if self._lstat(src) is None:
            raise FileError(f"'{rel}' does not exist.", 404)
        dst_parent, dst_name = self._parent_and_name(to)
        dst = posixpath.join(dst_parent, dst_name)
        if self._lstat(dst) is not None:
            raise Conflict(f"'{to}' already exists.")
        try:
            self.sftp.rename(src, dst)
        except OSError as exc:
            raise _sftp_error(exc, rel) from None
        return {"path": to}

    def delete(self, rel: str) -> dict:
        parent, name = self._parent_and_name(rel)
        target = posixpath.join(parent, name)
        st = self._lstat(target)
        if st is None:
            raise FileError(f"'{rel}' does not exist.", 404)
        try:
            if stat.S_ISDIR(st.st_mode):
                if self.sftp.listdir(target):
                    raise FileError(f"The folder '{rel}' is not empty; empty it first (or use the terminal).", 409)
                self.sftp.rmdir(target)
            else:
                self.sftp.remove(target)  # a symlink is removed itself, never its target
        except OSError as exc:
            raise _sftp_error(exc, rel) from None
        return {"path": rel, "deleted": True}
