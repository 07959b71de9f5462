"""The ``ssh`` provider: a pool of lab hosts, here a real OpenSSH server on loopback registered
as a Host in the admin's model (a 2-GPU host is faked with gpu_count=2: allocation needs no GPU)."""
import os
from datetime import timedelta

import pytest

from baseliner.attempts import clock
from baseliner.attempts.states import State
from baseliner.audit.models import AuditEvent
from baseliner.machines.models import Host, Lease
from baseliner.machines.services import (
    lease_health_check,
    lease_provision,
    lease_reap,
    lease_run,
    lease_teardown,
    machine_status,
)
from provisioning import base, ssh
from tests import factories
from tests.machines_helpers import new_attempt, start, teardown_all, unix_user_exists

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="per-lease Unix users need root")]


@pytest.fixture
def host(settings, sshd, db):
    settings.MACHINE_PROVIDER = "ssh"
    settings.BASELINER_PREPARE_HOOKS = []
    settings.LEASE_HEALTH_FAILURES = 2
    base.get_provider.cache_clear()
    pem, pub = ssh.generate_key()
    sshd.authorize("root", pub)
    host = Host(name=f"gpu-box-{sshd.port}", address="127.0.0.1", port=sshd.port, admin_user="root",
                host_key=sshd.host_key, gpu_count=2)
    host.set_admin_key(pem)
    host.save()
    yield host
    if not sshd.is_running():
        sshd.start()
    teardown_all()


def gpu_env():
    return factories.environment(resources={"gpus": 1})


def cuda_of(lease) -> str:
    result = lease_run(lease=lease, as_admin=False, command="bash -lc 'echo \"[$CUDA_VISIBLE_DEVICES]\"'")
    assert result.ok, result.stderr
    return result.stdout.strip()


def test_two_attempts_get_different_gpus_and_a_third_waits_in_the_queue(host, client):
    env = gpu_env()
    first, second, third = (new_attempt(env=env) for _ in range(3))
    a, b = start(first), start(second)
    assert (a.state, b.state) == (Lease.State.READY, Lease.State.READY)
    assert {a.gpu_index, b.gpu_index} == {0, 1} and a.host == b.host == host
    assert {cuda_of(a), cuda_of(b)} == {"[0]", "[1]"}
    assert a.provider_state["env"] == {"CUDA_VISIBLE_DEVICES": str(a.gpu_index)}  # what the scorer is given

    c = start(third)
    assert (third.state, c.state, c.gpu_index, third.started_at) == (State.QUEUED, Lease.State.REQUESTED, None, None)
    assert machine_status(attempt=third)["queue_position"] == 1
    client.force_login(third.expert)
    page = client.get(f"/attempts/{third.pk}/").content.decode()
    assert "you are number <strong id=\"queue-position\">1</strong> in the queue" in page
    assert client.get(f"/attempts/{third.pk}/machine/").json()["queue_position"] == 1

    lease_teardown(lease=a, reason="attempt ended")  # frees GPU a
    lease_provision(lease_id=c.pk)  # what the queue advance enqueues
    c.refresh_from_db()
    third.refresh_from_db()
    assert (third.state, c.state, c.gpu_index) == (State.RUNNING, Lease.State.READY, a.gpu_index)
    assert cuda_of(c) == f"[{a.gpu_index}]"


def test_the_database_never_lets_two_live_leases_share_a_gpu(host):
    from django.db import IntegrityError, transaction

    first, second = new_attempt(), new_attempt()
    Lease.objects.create(attempt=first, provider="ssh", state="ready", host=host, gpu_index=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Lease.objects.create(attempt=second, provider="ssh", state="provisioning", host=host, gpu_index=0)


def test_a_cpu_environment_runs_on_a_host_without_gpus_and_sees_no_gpu(host):
    host.gpu_count = 0
    host.save(update_fields=["gpu_count"])
    attempt = new_attempt()
    lease = start(attempt)
    assert (attempt.state, lease.gpu_index) == (State.RUNNING, None)
    assert lease_run(lease=lease, as_admin=False, command="id -un").stdout.strip() == lease.username


def test_a_dead_host_is_detected_by_health_checks_and_reaped(host, sshd):
    attempt = new_attempt(env=gpu_env())
    lease = start(attempt)
    lease_health_check(lease=lease)
    lease.refresh_from_db()
    assert (lease.state, lease.health_failures) == (Lease.State.READY, 0)

    sshd.stop()  # the host dies
    lease_health_check(lease=lease)
    lease.refresh_from_db()
    assert (lease.state, lease.health_failures) == (Lease.State.READY, 1)
    lease_health_check(lease=lease)
    lease.refresh_from_db()
    assert lease.state == Lease.State.UNHEALTHY and "cannot reach 127.0.0.1" in lease.error
    assert machine_status(attempt=attempt)["healthy"] is False
    assert AuditEvent.objects.filter(action="lease.unhealthy", attempt=attempt).exists()

    # Still dead 16 minutes later: the reaper tears it down; the host being dead, the
    # teardown waits (GPU still reserved) and is retried once the host answers again.
    reaped = lease_reap(at=clock.now() + timedelta(minutes=16))
    assert reaped == [(lease.pk, "unreachable for more than 15 minutes")]
    lease.refresh_from_db()
    assert lease.state == Lease.State.TEARING_DOWN and "teardown failed" in lease.error
    sshd.start()
    lease_reap(at=clock.now() + timedelta(minutes=20))
    lease.refresh_from_db()
    assert lease.state == Lease.State.TORN_DOWN and not unix_user_exists(lease.username)
    assert AuditEvent.objects.filter(action="lease.teardown", attempt=attempt, reason__startswith="reaper:").count() == 1


def test_the_reaper_tears_down_leases_whose_attempt_ended_once_the_end_steps_are_done(host):
    from baseliner.attempts.lifecycle import attempt_end

    attempt = new_attempt()
    lease = start(attempt)
    assert lease_reap() == []  # a running attempt keeps its machine
    attempt = attempt_end(attempt=attempt, reason="expert")
    assert lease_reap() == []  # the end steps (archive, final scoring) still need the machine
    attempt.end_steps_finished_at = clock.now()
    attempt.save(update_fields=["end_steps_finished_at"])
    assert lease_reap() == [(lease.pk, "no live attempt (the attempt is ended)")]
    lease.refresh_from_db()
    assert lease.state == Lease.State.TORN_DOWN and not unix_user_exists(lease.username)
    event = AuditEvent.objects.get(action="lease.teardown", attempt=attempt)
    assert event.reason == "reaper: no live attempt (the attempt is ended)"


def test_end_steps_that_never_finish_do_not_keep_a_machine_forever(host, settings):
    from baseliner.attempts.lifecycle import attempt_end

    attempt = new_attempt()
    lease = start(attempt)
    attempt_end(attempt=attempt, reason="expert")
    assert lease_reap(at=clock.now() + timedelta(minutes=59)) == []
    assert lease_reap(at=clock.now() + timedelta(minutes=61)) == [(lease.pk, "no live attempt (the attempt is ended)")]


def test_a_host_without_a_pinned_key_is_refused(host):
    host.host_key = ""
    host.save(update_fields=["host_key"])
    attempt = new_attempt()
    lease = start(attempt)
    assert attempt.state == State.PROVISION_FAILED
    assert attempt.last_error == "The machine assigned to you is not fully configured; staff have been told."
    assert "has no pinned host key" in lease.error


def wait_for(predicate, timeout=60.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_with_the_real_worker_a_freed_gpu_goes_to_the_next_attempt_in_the_queue(host, worker):
    from baseliner.attempts.models import Attempt
    from baseliner.attempts.services import attempt_accept_rules
    from baseliner.machines.services import attempt_request_start, lease_for_attempt

    host.gpu_count = 1
    host.save(update_fields=["gpu_count"])
    env = gpu_env()
    first, second = new_attempt(env=env), new_attempt(env=env)
    for attempt in (first, second):
        attempt_accept_rules(attempt=attempt)
        attempt_request_start(attempt=attempt, user=attempt.expert)  # the Start button: the worker takes over

    def state(attempt):
        return Attempt.objects.get(pk=attempt.pk).state

    def why():
        return f"{list(Lease.objects.values_list('state', 'error'))}\nworker log:\n{worker.log()[-3000:]}"

    assert wait_for(lambda: state(first) == State.RUNNING), why()
    assert wait_for(lambda: Lease.objects.get(attempt=second).progress_message == "Waiting for a free machine")
    assert state(second) == State.QUEUED
    assert machine_status(attempt=second)["queue_position"] == 1

    lease_teardown(lease=lease_for_attempt(attempt=first), reason="attempt ended")
    assert wait_for(lambda: state(second) == State.RUNNING), why()
    lease = lease_for_attempt(attempt=second)
    assert lease.gpu_index == 0 and cuda_of(lease) == "[0]"
