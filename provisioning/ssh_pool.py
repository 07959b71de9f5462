"""
The ``ssh`` provider: a pool of GPU hosts the lab already owns, registered in the admin
(Machines -> Hosts: address, port, admin user with root, its private key, the host's pinned
public key, number of GPUs).

Each attempt that needs a GPU leases one free GPU on one enabled host, never one another live
lease holds (chosen under a row lock on the hosts; the ``lease_one_live_per_gpu`` constraint
backs it up). An attempt that needs no GPU takes a CPU slot (``max_cpu_attempts`` per host,
hosts without GPUs first). When nothing is free ``allocate`` says so and the attempt waits in
the queue; a lease ending gives the next one its turn.

On the host each lease gets its own Unix users and folders (``shared_host``); the expert sees
only their GPU through ``CUDA_VISIBLE_DEVICES`` in their login environment (and ``""`` on a
GPU host when the attempt has no GPU). The admin user must be ``root``: preparation and
teardown create and delete users. The host key is never learnt from a connection: staff pin
it in the admin (``ssh-keyscan`` output checked out of band), and every connection verifies it.
"""
from __future__ import annotations

import json

from django.db import transaction

from . import shared_host, ssh
from .base import Provider, ProvisionError


def gpus_needed(environment) -> int:
    try:
        return int((environment.resources or {}).get("gpus", 0) or 0)
    except (TypeError, ValueError):
        return 0


class SshPoolProvider(Provider):
    name = "ssh"

    def allocate(self, *, lease) -> bool:
        from baseliner.machines.models import Host, Lease

        need_gpu = gpus_needed(lease.attempt.environment) > 0
        with transaction.atomic():
            hosts = list(Host.objects.select_for_update().filter(enabled=True).order_by("gpu_count" if not need_gpu else "pk", "pk"))
            for host in hosts:
                live = Lease.objects.filter(host=host, state__in=Lease.LIVE_STATES).exclude(pk=lease.pk)
                if need_gpu:
                    used = set(live.exclude(gpu_index=None).values_list("gpu_index", flat=True))
                    free = [i for i in range(host.gpu_count) if i not in used]
                    if free:
                        lease.host, lease.gpu_index = host, free[0]
                        return True
                elif live.filter(gpu_index=None).count() < host.max_cpu_attempts:
                    lease.host, lease.gpu_index = host, None
                    return True
        return False

    def provision(self, *, lease):
        host = lease.host
        if host is None:
            raise ProvisionError(f"lease {lease.pk} has no host allocated")
        if not host.host_key:
            raise ProvisionError(f"host {host.name} has no pinned host key: set it in the admin",
                                 user_message="The machine assigned to you is not fully configured; staff have been told.")
        if host.admin_user != "root":
            raise ProvisionError(f"host {host.name}: the admin user must be root (is {host.admin_user!r})")
        state = shared_host.new_state()
        if lease.gpu_index is not None:
            state["env"] = {"CUDA_VISIBLE_DEVICES": str(lease.gpu_index)}
            cuda = str(lease.gpu_index)
        else:
            state["env"] = {"CUDA_VISIBLE_DEVICES": ""} if host.gpu_count else {}
            cuda = "" if host.gpu_count else None
        expert_key, expert_pub = ssh.generate_key()
        lease.provider_state = state
        lease.username = f"bl{state['token']}"
        lease.address, lease.port = host.address, host.port
        lease.host_key = host.host_key.strip()
        lease.host_key_fingerprint = ssh.fingerprint(lease.host_key)
        lease.gpu_info = {"host": host.name, "gpu_index": lease.gpu_index}
        lease.set_credentials(json.dumps({"expert_key": expert_key, "admin_key": host.admin_key(), "admin_user": host.admin_user}))
        yield {"progress": 10, "message": f"Connecting to {host.name}"}

        client = self.client(lease=lease, as_admin=True)
        try:
            yield {"progress": 20, "message": "Creating your user on the machine"}
            state["uid"] = shared_host.create_users(client, state=state, expert_public_key=expert_pub, cuda=cuda)
        finally:
            client.close()
        yield {"progress": 30, "message": "Your user is ready"}

    def teardown(self, *, lease) -> None:
        state = lease.provider_state or {}
        if not shared_host.TOKEN_RE.match(state.get("token", "")) or not lease.host_key:
            return  # nothing was made on any host
        client = self.client(lease=lease, as_admin=True)
        try:
            shared_host.remove_users(client, state=state)
        finally:
            client.close()
