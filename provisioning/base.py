"""
The provider interface: how baseliner gets, watches and gives back an expert's machine.

Modelled on JupyterHub's ``Spawner``. A provider is a small class; adding a backend is one
module with one subclass of :class:`Provider`, named in ``settings.MACHINE_PROVIDER`` by a
short name (``local``, ``ssh``, ``ec2``) or a dotted path (``mylab.machines.SlurmProvider``).
Providers hold no state of their own: everything needed to reach, check and tear down a
machine lives on its :class:`~baseliner.machines.models.Lease` row, so any process (a web
server, a restarted worker) can pick up any lease.

What a backend overrides, and the contract of each:

``allocate(*, lease) -> bool``
    Reserve capacity for the lease (a GPU on a host, a quota slot). Called inside a
    transaction; take row locks there. ``False`` means "nothing free": the attempt waits in
    the queue and ``allocate`` is called again when a lease ends. Default: always ``True``.

``provision(*, lease)`` -> iterator of ``{"progress": 0-100, "message": str}``
    Create or start the machine and make it reachable over SSH, as a generator (JupyterHub's
    ``progress()``). By the time it finishes it has set on the lease ``address``, ``port``,
    ``username`` (the expert's Unix user), ``host_key`` (pinned: learnt from a source baseliner
    trusts, never from the first connection), credentials (``lease.set_credentials(json)``
    with ``expert_key``, ``admin_key``, ``admin_user``) and ``provider_state`` with at least
    ``home``, ``protected_dir``, ``protected_group``, ``scorer_user`` and ``machine_dir``.
    The caller saves the lease after every event, so **record a resource's name in
    ``provider_state`` and yield before creating it**: then ``teardown`` can find whatever a
    crash left half-made. Raise :class:`ProvisionError` (or anything) to fail; the caller
    then calls ``teardown``. Shared preparation (files, scorer, tmux, hooks) is not the
    provider's job: ``provisioning.prepare`` does it over SSH for every provider.

``client(*, lease, as_admin) -> paramiko.SSHClient``
    A connected client, host key verified. The default connects with the lease's fields.

``poll(*, lease) -> str | None``
    Health: ``None`` while the machine answers, else a short reason for staff. Never raises.

``attach(*, lease) -> bool``
    Re-attach after a restart of the app (JupyterHub's ``load_state``): make whatever the
    provider runs on the app's side (the local sshd) live again from ``provider_state``,
    without creating a new machine. ``True`` if the machine is there.

``teardown(*, lease) -> None``
    Give everything back: kill the expert's processes, remove users, files and keys, delete
    the VM, free the GPU. Idempotent ("already gone" is success) and safe on a half-made
    lease. Raise only when it could not be done (unreachable): the reaper retries.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache

import paramiko
from django.utils.module_loading import import_string

from . import ssh

PROVIDERS = {
    "local": "provisioning.local.LocalProvider",
    "ssh": "provisioning.ssh_pool.SshPoolProvider",
    "ec2": "provisioning.ec2.Ec2Provider",
}

Event = dict  # {"progress": int 0-100, "message": str}


class ProvisionError(Exception):
    """A provisioning step failed. ``str()`` is the log message (for staff, may name hosts and
    commands); ``user_message`` is what the expert reads next to the Retry button."""

    user_message = "Preparing your machine failed. Press Retry to try again; staff have been told."

    def __init__(self, message: str, *, user_message: str | None = None):
        super().__init__(message)
        if user_message:
            self.user_message = user_message


class CapacityUnavailable(ProvisionError):
    """The provider has no machine to give right now (a cloud zone out of GPUs, a quota used
    up). Not a failure: the caller tears down whatever was half-made, puts the attempt back in
    the queue with ``user_message`` (its clock has not started) and tries again later."""

    user_message = ("No machine is free right now. Your attempt is waiting in the queue and baseliner keeps trying; "
                    "your clock has not started.")


def user_message_for(exc: BaseException) -> str:
    """What the expert may read about ``exc`` (never the log message of an unknown error)."""
    return getattr(exc, "user_message", None) or ProvisionError.user_message


class Provider:
    """Base class; see the module docstring for what a backend overrides."""

    name = "base"

    def allocate(self, *, lease) -> bool:
        return True

    def provision(self, *, lease) -> Iterator[Event]:
        raise NotImplementedError

    def client(self, *, lease, as_admin: bool = False) -> paramiko.SSHClient:
        creds = json.loads(lease.credentials() or "{}")
        if as_admin:
            user, key = creds.get("admin_user", "root"), creds.get("admin_key", "")
        else:
            user, key = lease.username, creds.get("expert_key", "")
        if not key:
            raise ssh.SSHError(f"lease {lease.pk} has no {'admin' if as_admin else 'expert'} key")
        return ssh.connect(address=lease.address, port=lease.port or 22, username=user, private_key=key,
                           host_key=lease.host_key)

    def poll(self, *, lease) -> str | None:
        try:
            client = self.client(lease=lease, as_admin=True)
        except ssh.SSHError as exc:
            return str(exc)
        try:
            result = ssh.run(client, f"id -u {lease.username}", timeout=15)
        except (ssh.SSHError, paramiko.SSHException, OSError) as exc:
            return f"health check command failed: {exc}"
        finally:
            client.close()
        if not result.ok:
            return f"the expert user is missing on the machine ({result.stderr.strip()[:200] or result.exit_status})"
        return None

    def attach(self, *, lease) -> bool:
        return self.poll(lease=lease) is None

    def teardown(self, *, lease) -> None:
        raise NotImplementedError


@lru_cache(maxsize=16)
def get_provider(name: str) -> Provider:
    """The provider for a short name or dotted path (like Django's ``load_backend``)."""
    path = PROVIDERS.get(name, name)
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ProvisionError(f"unknown machine provider {name!r}: {exc}",
                             user_message="baseliner is misconfigured (unknown machine provider); staff have been told.") from exc
    provider = cls()
    if not isinstance(provider, Provider):
        raise ProvisionError(f"{path} is not a provisioning.base.Provider")
    return provider
