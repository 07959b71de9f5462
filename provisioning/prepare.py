"""
Machine preparation, the same for every provider: run over the admin SSH connection once the
provider has made the machine reachable and created the expert's user and folders.

1. the environment's ``files/`` -> the expert's home, owned by the expert, plus
   ``instructions.md`` (the environment's instructions);
2. the environment's ``scoring/`` -> ``protected_dir``, owned by root and the lease's
   protected group (dirs 0750, files 0640 or 0750): the expert cannot read or write it;
3. tmux present (installed with apt if missing);
4. every hook in ``settings.BASELINER_PREPARE_HOOKS``, in order, as
   ``hook(lease=lease, client=<admin paramiko client>, environment=environment)``;
   a hook raises to fail the preparation;
5. checks that the expert can log in, and cannot read the protected folder.

Files travel as one tar stream over the SSH channel (no second SSH library, no rsync
daemon); ownership is set by name inside the archive, so nothing in the home is chowned
recursively after the fact. The reference solution never leaves the app host.
"""
from __future__ import annotations

import io
import shlex
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.utils.module_loading import import_string

from . import ssh
from .base import ProvisionError

SKIP_NAMES = {"__pycache__", ".git", ".DS_Store"}


def environment_folder(environment) -> Path | None:
    """The environment's folder *for its version* (the snapshot taken when that version was
    loaded, so an attempt on an old version never gets newer files), else its folder under
    ENVIRONMENTS_DIR, or None for one defined only in the database."""
    from baseliner.catalog.services import environment_path

    snapshot = environment_path(environment=environment)
    if snapshot is not None:
        return snapshot
    if not environment.source_path:
        return None
    folder = (Path(settings.ENVIRONMENTS_DIR) / environment.source_path).resolve()
    if not folder.is_dir():
        raise ProvisionError(f"environment folder {folder} is missing",
                             user_message="This task's files are missing on the server; staff have been told.")
    return folder


def _tar(entries: list[tuple[Path | bytes, str]], *, owner: str, group: str, protected: bool) -> tempfile.SpooledTemporaryFile:
    """A tar of (local folder or file content, name in archive) entries, owned by name."""
    out = tempfile.SpooledTemporaryFile(max_size=8 << 20)

    def own(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if Path(info.name).name in SKIP_NAMES:
            return None
        info.uid = info.gid = 0
        info.uname, info.gname = owner, group
        if protected:
            info.mode = 0o750 if info.isdir() or info.mode & 0o100 else 0o640
        else:
            info.mode &= 0o755
        return info

    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for source, name in entries:
            if isinstance(source, bytes):
                info = own(tarfile.TarInfo(name))
                # written now (a TarInfo's own mtime is 1970, which `ls -l` would show the expert)
                info.size, info.mode, info.mtime = len(source), 0o644, time.time()
                tar.addfile(info, io.BytesIO(source))
            else:
                for child in sorted(source.iterdir()):
                    tar.add(child, arcname=child.name if name == "." else f"{name}/{child.name}", filter=own)
    out.seek(0)
    return out


def _untar(client, archive, dest: str) -> None:
    cmd = f"tar -x --no-overwrite-dir -f - -C {shlex.quote(dest)}"
    result = ssh.run(client, cmd, stdin=archive, timeout=600)
    if not result.ok:
        raise ProvisionError(f"copying files to {dest} failed: {result.stderr.strip()[-500:]}")


def prepare_machine(*, lease, environment, client) -> Iterator[dict]:
    """Prepare a provisioned machine (see the module docstring); yields progress events."""
    state = lease.provider_state
    insecure = bool(state.get("insecure"))
    user, group = lease.username, state["protected_group"]
    folder = environment_folder(environment)

    yield {"progress": 40, "message": "Copying the task's files"}
    entries: list = []
    if folder and (folder / "files").is_dir():
        entries.append((folder / "files", "."))
    entries.append(((environment.instructions or "").encode(), "instructions.md"))
    with _tar(entries, owner=user, group=user, protected=False) as archive:
        _untar(client, archive, state["home"])

    yield {"progress": 55, "message": "Installing the scorer"}
    if folder and (folder / "scoring").is_dir():
        with _tar([(folder / "scoring", ".")], owner="root", group=group, protected=True) as archive:
            _untar(client, archive, state["protected_dir"])
    if not insecure:
        protected = shlex.quote(state["protected_dir"])
        result = ssh.run(client, f"chown root:{shlex.quote(group)} {protected} && chmod 0750 {protected}", timeout=30)
        if not result.ok:
            raise ProvisionError(f"protecting {state['protected_dir']} failed: {result.stderr.strip()}")

    yield {"progress": 65, "message": "Checking tmux"}
    result = ssh.run(client, "command -v tmux >/dev/null || (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux "
                             ">/dev/null && command -v tmux >/dev/null)", timeout=600)
    if not result.ok:
        raise ProvisionError(f"tmux is missing on the machine and could not be installed: {result.stderr.strip()[-300:]}")

    hooks = list(settings.BASELINER_PREPARE_HOOKS)
    for i, path in enumerate(hooks):
        yield {"progress": 70 + 20 * i // max(len(hooks), 1), "message": "Setting up the task"}
        import_string(path)(lease=lease, client=client, environment=environment)

    yield {"progress": 92, "message": "Checking your access"}
    from .base import get_provider

    expert = get_provider(lease.provider).client(lease=lease, as_admin=False)
    try:
        protected = shlex.quote(state["protected_dir"])
        result = ssh.run(expert, f"id -un; cd; pwd; if ls {protected} >/dev/null 2>&1; then echo readable; fi", timeout=30)
    finally:
        expert.close()
    lines = result.stdout.split()
    expected = [user] if insecure else [user, state["home"]]
    if not result.ok or lines[:len(expected)] != expected:
        raise ProvisionError(f"the expert's login check failed: {result.stdout!r} {result.stderr.strip()[-300:]}")
    if "readable" in lines and not insecure:
        raise ProvisionError(f"the expert can read {state['protected_dir']}: refusing to start")
