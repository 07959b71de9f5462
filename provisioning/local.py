"""
The ``local`` provider (the embedded default): the expert's machine is the app's own host,
reached over real SSH on loopback.

One :class:`~provisioning.sshd.LoopbackSshd` serves every local lease. Its state dir
(``settings.LOCAL_SSHD_DIR``, under ``BASELINER_VAR_DIR``) holds its host key, port, pid and
the keys baseliner authorizes, so a restarted app finds it again (``attach``), and restarts it
with the same host key and port if it died. It is started by the first lease and stopped when
the last one is torn down (a registry of live lease tokens in the state dir, under a file lock).

As root, each lease gets its own Unix users and folders (``shared_host``); the admin key of the
lease is authorized for root on this sshd only, and revoked at teardown.

Not root: a clearly labelled **insecure development mode**. The expert user is the user running
baseliner, the "protected" folder is readable by the expert, and nothing separates attempts
from each other or from baseliner itself. ``provider_state["insecure"]`` is true; the attempt
page and the logs say so.
"""
from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import logging
import os
import shlex
import shutil
import signal
import stat
from pathlib import Path

from django.conf import settings

from . import shared_host, ssh
from .base import Provider, ProvisionError
from .sshd import LoopbackSshd, SshdError

log = logging.getLogger(__name__)

INSECURE_NOTE = ("Insecure development mode: baseliner is not running as root, so your machine is baseliner's own "
                 "user account, with no separation from other attempts or from the scorer.")


def is_root() -> bool:
    return os.geteuid() == 0


class LocalProvider(Provider):
    name = "local"

    # --- the shared sshd -------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return Path(settings.LOCAL_SSHD_DIR)

    def sshd(self) -> LoopbackSshd:
        return LoopbackSshd(self.state_dir)

    @contextlib.contextmanager
    def _locked(self):
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir.parent / f".{self.state_dir.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _registry(self) -> Path:
        return self.state_dir / "leases"

    def _register(self, token: str) -> LoopbackSshd:
        with self._locked():
            sshd = self.sshd()
            try:
                sshd.start()
            except (SshdError, OSError) as exc:
                raise ProvisionError(f"the local sshd did not start: {exc}") from exc
            self._registry().mkdir(exist_ok=True)
            (self._registry() / token).touch()
            return sshd

    def _unregister(self, token: str) -> None:
        """Forget the lease; stop the sshd when no local lease is left."""
        with self._locked():
            registry = self._registry()
            (registry / token).unlink(missing_ok=True)
            if not (registry.exists() and any(registry.iterdir())):
                self.sshd().stop()

    # --- the provider interface --------------------------------------------------------
    def provision(self, *, lease):
        state = shared_host.new_state()
        token = state["token"]
        insecure = not is_root()
        if insecure:
            log.warning("local provider: %s (lease %s)", INSECURE_NOTE, lease.pk)
            user = getpass.getuser()
            machine_dir = Path(settings.VAR_DIR) / "machines" / "leases" / token
            state.update(home=str(machine_dir / "home"), machine_dir=str(machine_dir),
                         protected_dir=str(machine_dir / "protected"), scorer_user=user,
                         protected_group=user, insecure=True, insecure_note=INSECURE_NOTE)
        else:
            user = f"bl{token}"
            seal_app_host()
        state["sshd_dir"] = str(self.state_dir)
        expert_key, expert_pub = ssh.generate_key()
        admin_key, admin_pub = ssh.generate_key()
        lease.provider_state = state
        lease.set_credentials(json.dumps({"expert_key": expert_key, "admin_key": admin_key,
                                          "admin_user": "root" if not insecure else user}))
        lease.username = user
        lease.address = "127.0.0.1"
        yield {"progress": 5, "message": "Starting the machine"}

        sshd = self._register(token)
        lease.port = sshd.port
        lease.host_key = sshd.host_key  # read from our own state dir: trusted
        lease.host_key_fingerprint = ssh.fingerprint(lease.host_key)
        if insecure:
            sshd.add_key(user, expert_pub, tag=f"baseliner-expert-{token}")
            sshd.add_key(user, admin_pub, tag=f"baseliner-admin-{token}")
        else:
            sshd.add_key("root", admin_pub, tag=f"baseliner-admin-{token}")
        yield {"progress": 15, "message": "Creating your user on the machine"}

        client = self.client(lease=lease, as_admin=True)
        try:
            if insecure:
                home, protected = shlex.quote(state["home"]), shlex.quote(state["protected_dir"])
                result = ssh.run(client, f"mkdir -p {home} {protected} && chmod 0700 {home} {protected}", timeout=30)
                if not result.ok:
                    raise ProvisionError(f"creating {state['machine_dir']} failed: {result.stderr.strip()}")
            else:
                state["uid"] = shared_host.create_users(client, state=state, expert_public_key=expert_pub, cuda=None)
        finally:
            client.close()
        yield {"progress": 30, "message": "Your user is ready"}

    def client(self, *, lease, as_admin=False):
        try:
            return super().client(lease=lease, as_admin=as_admin)
        except ssh.SSHError as exc:
            # The sshd died (the host rebooted)? Start it again (same host key and port from
            # its state dir) and retry once. A changed host key is never retried.
            if isinstance(exc, ssh.HostKeyMismatch) or self.sshd().is_running() or not self.attach(lease=lease):
                raise
            return super().client(lease=lease, as_admin=as_admin)

    def attach(self, *, lease) -> bool:
        token = lease.provider_state.get("token", "")
        if not token or not (self._registry() / token).exists():
            return False
        with self._locked():
            sshd = self.sshd()
            if not sshd.is_running():
                log.warning("local provider: the sshd for lease %s was not running; restarting it", lease.pk)
                try:
                    sshd.start()
                except (SshdError, OSError):
                    log.exception("local provider: could not restart the sshd")
                    return False
        return True

    def poll(self, *, lease) -> str | None:
        if not self.sshd().is_running() and not self.attach(lease=lease):
            return "the local sshd is not running and could not be restarted"
        if lease.provider_state.get("insecure"):
            return None if Path(lease.provider_state["home"]).is_dir() else "the lease's home folder is gone"
        return super().poll(lease=lease)

    def teardown(self, *, lease) -> None:
        state = lease.provider_state or {}
        token = state.get("token", "")
        if not shared_host.TOKEN_RE.match(token):
            return  # nothing was ever made
        sshd = self.sshd()
        if state.get("insecure"):
            _kill_processes_under(Path(state["home"]))
            shutil.rmtree(state["machine_dir"], ignore_errors=True)
            sshd.remove_key(lease.username, tag=f"baseliner-expert-{token}")
        elif (self._registry() / token).exists():
            # Revoke the expert's key first so no new session starts while we clean up.
            client = self.client(lease=lease, as_admin=True)
            try:
                shared_host.remove_users(client, state=state)
            finally:
                client.close()
        sshd.remove_key(lease.username if state.get("insecure") else "root", tag=f"baseliner-admin-{token}")
        self._unregister(token)


def app_private_paths() -> list[Path]:
    """What of the app's own host an expert user on it must never read: baseliner's var dir
    (an SQLite database, recordings, archives, exports, this sshd's keys), the environments
    (reference solutions and scorers) and the ``.env`` file with the secrets."""
    names = ("VAR_DIR", "RECORDINGS_DIR", "ARCHIVES_DIR", "EXPORTS_DIR", "ENVIRONMENTS_DIR", "ENVIRONMENT_SNAPSHOTS_DIR",
             "LOCAL_SSHD_DIR")
    paths = [Path(getattr(settings, n)) for n in names if getattr(settings, n, None)]
    return [*paths, Path(settings.BASE_DIR) / ".env"]


def seal_app_host() -> list[str]:
    """Take the "other" permissions off ``app_private_paths`` (a default checkout leaves them
    world-readable, and on this provider every expert is a local user). Idempotent; returns
    what it changed. Only the app's own user (root here) needs these paths."""
    changed = []
    for path in app_private_paths():
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        if mode & 0o007:
            path.chmod(stat.S_IMODE(mode) & ~0o007)
            changed.append(str(path))
    if changed:
        log.warning("local provider: made %s private to baseliner (experts on this host could read them)", ", ".join(changed))
    return changed


def _kill_processes_under(folder: Path) -> None:
    """Insecure mode: end processes working in the lease's folder (they run as our own user)."""
    folder = folder.resolve()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(proc / "cwd"))
        except OSError:
            continue
        if cwd == folder or folder in cwd.parents:
            with contextlib.suppress(OSError):
                os.kill(int(proc.name), signal.SIGKILL)
