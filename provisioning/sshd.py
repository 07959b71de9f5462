"""
A real OpenSSH server on loopback: the ``local`` provider's machine and the tests' host.

It has its own host key, config, pid file and authorized-keys folder under ``state_dir``,
listens on 127.0.0.1 only, allows public keys only, and runs in its own process session so
that restarting the web app does not take the expert's machine down (``attach()`` finds it
again by pid file).

Running as root it can log in as any user (the METR model: an unprivileged expert user,
root for preparation and scoring). Note for user creation: OpenSSH without PAM refuses a
*locked* account ('!' in /etc/shadow, useradd's default), so create users with ``-p '*'``.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = os.environ.get("BASELINER_SSHD", "/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SshdError(RuntimeError):
    pass


class LoopbackSshd:
    def __init__(self, state_dir: Path | str, port: int | None = None):
        self.dir = Path(state_dir)
        self.port = port or self._saved_port() or free_port()

    # --- paths ---
    @property
    def host_key_path(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def config_path(self) -> Path:
        return self.dir / "sshd_config"

    @property
    def pid_path(self) -> Path:
        return self.dir / "sshd.pid"

    @property
    def keys_dir(self) -> Path:
        return self.dir / "authorized_keys"

    @property
    def log_path(self) -> Path:
        return self.dir / "sshd.log"

    @property
    def host_key(self) -> str:
        """The public host key line ('ssh-ed25519 AAAA...'), to pin in leases."""
        return " ".join(self.host_key_path.with_suffix(".pub").read_text().split()[:2])

    def _saved_port(self) -> int | None:
        try:
            return int((self.dir / "port").read_text())
        except (OSError, ValueError):
            return None

    # --- lifecycle ---
    def start(self, timeout: float = 15.0) -> None:
        if self.is_running():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.keys_dir.mkdir(exist_ok=True)
        os.chmod(self.keys_dir, 0o755)
        for path in (self.dir, self.keys_dir):
            if path.stat().st_uid != os.geteuid():
                raise SshdError(f"{path} belongs to another user: refusing to serve keys from it")
        if not self.host_key_path.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "baseliner", "-f", str(self.host_key_path)], check=True)
        (self.dir / "port").write_text(str(self.port))
        self.config_path.write_text(self._config())
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege-separation dir
        check = subprocess.run([SSHD, "-t", "-f", str(self.config_path)], capture_output=True, text=True)
        if check.returncode != 0:
            raise SshdError(f"sshd refused its configuration: {check.stderr.strip()}")
        log = open(self.log_path, "ab")
        subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config_path)], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise SshdError(f"sshd did not start on port {self.port}: {self.log_path.read_text()[-1000:]}")

    def pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def is_running(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our own dead child
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie is not running

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the listener and every session it spawned (they are in its process session)."""
        pid = self.pid()
        if pid is None:
            return
        # Each connection's sshd calls setsid(), so it is not in our process group: end the
        # connections (children of the listener) first, then the listener.
        subprocess.run(["pkill", "-TERM", "-P", str(pid)], check=False)
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.is_running():
            time.sleep(0.05)
        if self.is_running():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.pid_path.unlink(missing_ok=True)

    # --- keys ---
    def authorize(self, username: str, public_key_line: str) -> None:
        """Allow ``public_key_line`` to log in as ``username`` (replaces earlier keys)."""
        path = self.keys_dir / username
        path.write_text(public_key_line.strip() + "\n")
        os.chmod(path, 0o644)

    def revoke(self, username: str) -> None:
        (self.keys_dir / username).unlink(missing_ok=True)

    def add_key(self, username: str, public_key_line: str, *, tag: str) -> None:
        """Allow one more key for ``username``, labelled ``tag`` (one line per tag), next to
        the keys other leases authorized for the same user (e.g. root)."""
        line = " ".join(public_key_line.split()[:2]) + f" {tag}\n"
        with self._keys_locked(username) as lines:
            lines[:] = [x for x in lines if not x.rstrip("\n").endswith(f" {tag}")] + [line]

    def remove_key(self, username: str, *, tag: str) -> None:
        with self._keys_locked(username) as lines:
            lines[:] = [x for x in lines if not x.rstrip("\n").endswith(f" {tag}")]

    @contextlib.contextmanager
    def _keys_locked(self, username: str):
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        path = self.keys_dir / username
        with open(self.dir / ".keys.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            lines = path.read_text().splitlines(keepends=True) if path.exists() else []
            yield lines
            if lines:
                tmp = path.with_name(f".{username}.tmp")
                tmp.write_text("".join(lines))
                os.chmod(tmp, 0o644)
                os.replace(tmp, path)
            else:
                path.unlink(missing_ok=True)

    def _config(self) -> str:
        root = os.geteuid() == 0
        return f"""# written by baseliner (provisioning/sshd.py)
Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key_path}
PidFile {self.pid_path}
# Keys baseliner authorizes live in the state dir; an expert may add their own (for their
# own SSH client or VS Code) to ~/.ssh/authorized_keys, as on any machine.
AuthorizedKeysFile {self.keys_dir}/%u .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin {"prohibit-password" if root else "no"}
UsePAM no
# The keys folder is ours (root-owned, 0755, files 0644) and may live below a sticky /tmp,
# which StrictModes would refuse; the check it does is done in start() instead.
StrictModes no
AllowTcpForwarding no
AllowStreamLocalForwarding no
X11Forwarding no
PermitTunnel no
AllowAgentForwarding no
PermitUserEnvironment no
ClientAliveInterval 15
ClientAliveCountMax 4
MaxStartups 400:30:800
MaxSessions 100
LoginGraceTime 30
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
"""
