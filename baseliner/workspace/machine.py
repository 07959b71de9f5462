"""
The workspace's one way to the expert's machine.

Terminals and the editor connect *as the expert user* of the attempt's live lease, with the
host key pinned (``baseliner.machines.services.lease_client``). Everything here is blocking
(paramiko): async callers run it in a thread.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import paramiko

from baseliner.machines.models import Lease
from baseliner.machines.services import MACHINE_NOT_READY, lease_client, lease_for_attempt
from baseliner.recording.shell import integration_paths
from provisioning import ssh


class NoMachine(Exception):
    """The attempt has no ready machine; ``str()`` is fit for the expert."""


@dataclass(frozen=True)
class MachineInfo:
    """What the workspace needs to know about the machine, read once from the lease."""

    lease: Lease
    username: str
    home: str
    nonce: str
    bashrc: str
    tmux_conf: str


def machine_info(*, attempt) -> MachineInfo:
    """The attempt's ready machine (database only; call from sync code)."""
    lease = lease_for_attempt(attempt=attempt)
    if lease is None or lease.state not in (Lease.State.READY, Lease.State.UNHEALTHY):  # unhealthy: still try
        raise NoMachine(MACHINE_NOT_READY)
    state = lease.provider_state or {}
    home = state.get("home") or f"/home/{lease.username}"
    paths = integration_paths(home=home, machine_dir=state.get("machine_dir"))
    return MachineInfo(lease, lease.username, home.rstrip("/") or "/", lease.nonce, paths["bashrc"], paths["tmux_conf"])


def expert_client(*, machine: MachineInfo) -> paramiko.SSHClient:
    """A connected SSH client as the expert user (blocking; no database); the caller closes it."""
    return lease_client(lease=machine.lease, as_admin=False)


# --- a small cache of expert connections for the editor's requests --------------------------
# Opening SSH costs a key exchange (~50-100 ms); the editor makes many small requests. One
# connection per lease is kept for a few minutes; each request opens its own SFTP channel.
_cache: dict[int, tuple[paramiko.SSHClient, float]] = {}
_cache_lock = threading.Lock()
CACHE_IDLE_SECONDS = 300


def _cached_client(machine: MachineInfo) -> paramiko.SSHClient:
    now = time.monotonic()
    with _cache_lock:
        for lease_id, (client, used) in list(_cache.items()):
            if now - used > CACHE_IDLE_SECONDS:
                del _cache[lease_id]
                client.close()
        entry = _cache.get(machine.lease.pk)
        if entry is not None:
            transport = entry[0].get_transport()
            if transport is not None and transport.is_active():
                _cache[machine.lease.pk] = (entry[0], now)
                return entry[0]
            entry[0].close()
    client = expert_client(machine=machine)
    with _cache_lock:
        _cache[machine.lease.pk] = (client, now)
    return client


def forget_client(machine: MachineInfo) -> None:
    with _cache_lock:
        entry = _cache.pop(machine.lease.pk, None)
    if entry is not None:
        entry[0].close()


@contextmanager
def sftp_session(*, machine: MachineInfo):
    """An SFTP client as the expert (blocking)."""
    client = _cached_client(machine)
    try:
        sftp = client.open_sftp()
    except (paramiko.SSHException, OSError, EOFError):
        forget_client(machine)
        sftp = _cached_client(machine).open_sftp()
    try:
        yield sftp
    finally:
        sftp.close()


def run_as_expert(*, machine: MachineInfo, command: str, timeout: float = 20) -> ssh.RunResult:
    client = _cached_client(machine)
    try:
        return ssh.run(client, command, timeout=timeout)
    except ssh.Unreachable:  # the cached connection died under us: once more on a fresh one
        forget_client(machine)
        return ssh.run(_cached_client(machine), command, timeout=timeout)
