"""
The machine stops answering (its sshd frozen with SIGSTOP: connections open but nothing
answers, as with a hung or unreachable host): the expert sees a clear message, staff see the
lease unhealthy, the event is audited, and the clock policy for infrastructure failures is
applied: the wall clock keeps running (as in RE-Bench) and staff may extend it at once, audited;
the machine's own guard learns the new deadline as soon as it answers again. Nothing on it is lost.
"""
import os
import signal
from pathlib import Path

import pytest
from django.test import Client

from baseliner.attempts.lifecycle import attempt_extend, attempts_sweep
from baseliner.attempts.machine_guard import clock_dir
from baseliner.attempts.models import ClockEvent
from baseliner.attempts.clock import epoch
from baseliner.audit.models import AuditEvent
from baseliner.machines.models import Lease
from baseliner.machines.services import lease_health_check, lease_run
from provisioning import base
from provisioning.local import LocalProvider
from tests import factories
from tests.machines_helpers import make_environment_folder, new_attempt, start, teardown_all

pytestmark = [pytest.mark.slow, pytest.mark.faults,
              pytest.mark.skipif(os.geteuid() != 0, reason="per-lease Unix users need root")]


@pytest.fixture
def local(settings, tmp_path, db):
    settings.MACHINE_PROVIDER = "local"
    settings.LOCAL_SSHD_DIR = tmp_path / "local-sshd"
    settings.ENVIRONMENTS_DIR = tmp_path / "environments"
    settings.BASELINER_PREPARE_HOOKS = []
    settings.LEASE_HEALTH_FAILURES = 1
    settings.ENVIRONMENTS_DIR.mkdir()
    base.get_provider.cache_clear()
    yield LocalProvider()
    teardown_all()
    LocalProvider().sshd().stop()


def guard_deadline(lease) -> int:
    """The deadline the machine's own guard holds (root-only file on this host)."""
    return int(Path(clock_dir(lease.provider_state["machine_dir"]), "deadline").read_text())


def test_an_unreachable_machine_is_flagged_told_audited_and_staff_can_extend(local, settings):
    attempt = new_attempt(source_path=make_environment_folder(settings.ENVIRONMENTS_DIR))
    lease = start(attempt)
    assert lease.state == Lease.State.READY, lease.error
    assert lease_run(lease=lease, as_admin=False, command="echo work > ~/kept.txt").ok
    sshd_pid = int(local.sshd().pid_path.read_text())
    expert, staff = Client(), Client()
    expert.force_login(attempt.expert)
    reviewer = factories.user(staff=True)
    staff.force_login(reviewer)
    deadline_before = type(attempt).objects.get(pk=attempt.pk).deadline_at

    os.kill(sshd_pid, signal.SIGSTOP)
    try:
        lease = lease_health_check(lease=lease)
        # Staff: the lease is unhealthy in the monitor, with why; the event is in the audit log.
        assert lease.state == Lease.State.UNHEALTHY
        assert lease.error.startswith("health check:")
        rows = staff.get("/review/monitor.json").json()
        row = next(r for r in rows["attempts"] if r["id"] == attempt.pk)
        assert row["machine"] == "unhealthy"
        assert AuditEvent.objects.filter(action="lease.unhealthy", attempt=attempt).count() == 1
        # The expert: a clear message on the page and in the machine status.
        page = expert.get(f"/attempts/{attempt.pk}/").content.decode()
        assert 'id="machine-health" class="error" role="alert">Your machine is not answering' in page
        assert expert.get(f"/attempts/{attempt.pk}/machine/").json()["healthy"] is False
        # Policy: the wall clock keeps running, and staff may give the time back at once: the
        # deadline in the database moves now (audited); the machine's guard is told later.
        attempt.refresh_from_db()
        assert attempt.state == "running" and attempt.deadline_at == deadline_before
        response = staff.post(f"/admin/attempts/attempt/{attempt.pk}/clock/",
                              {"action": "extend", "minutes": "10", "reason": "machine unreachable"}, follow=True)
        page = response.content.decode()
        assert "Done: extend" in page and "The machine is not answering: its guard still holds the old deadline" in page
        attempt.refresh_from_db()
        assert (attempt.deadline_at - deadline_before).total_seconds() == 600
        assert attempt.machine_deadline_at == deadline_before  # the guard still has the old one
        assert guard_deadline(lease) == epoch(deadline_before)
        audit = AuditEvent.objects.get(attempt=attempt, actor=reviewer, action="attempt.extend")
        assert audit.data["machine"].startswith("pending: the machine is not answering")
        assert ClockEvent.objects.filter(attempt=attempt, kind="extend", seconds=600, actor=reviewer).exists()
    finally:
        os.kill(sshd_pid, signal.SIGCONT)

    lease = lease_health_check(lease=lease)
    assert lease.state == Lease.State.READY and lease.health_failures == 0
    # Once it answers, its guard learns the extended deadline (audited), without staff acting again.
    attempt.refresh_from_db()
    assert attempt.machine_deadline_at == attempt.deadline_at
    assert guard_deadline(lease) == epoch(attempt.deadline_at)
    assert AuditEvent.objects.filter(attempt=attempt, action="attempt.machine_deadline_synced").count() == 1
    assert 'id="machine-health" class="error" role="alert" hidden' in expert.get(f"/attempts/{attempt.pk}/").content.decode()
    assert lease_run(lease=lease, as_admin=False, command="cat ~/kept.txt").stdout == "work\n"


def test_staff_extend_while_the_sshd_is_killed_and_the_guard_learns_it_when_the_machine_is_back(local, settings):
    """A really dead sshd (SIGKILL: connections refused), extended before any health check
    noticed: the extension counts at once and is audited as not yet told to the machine; the
    sweeper keeps trying (and failing) meanwhile; a restarted sshd gets the new deadline.
    The local provider restarts a dead sshd by itself; to model a host that stays down, its
    state folder belongs to another user meanwhile (the restart refuses to serve keys from it)."""
    attempt = new_attempt(source_path=make_environment_folder(settings.ENVIRONMENTS_DIR))
    lease = start(attempt)
    assert lease.state == Lease.State.READY, lease.error
    reviewer = factories.user(staff=True)
    attempt.refresh_from_db()
    deadline_before = attempt.deadline_at
    assert attempt.machine_deadline_at == deadline_before and guard_deadline(lease) == epoch(deadline_before)
    sshd = local.sshd()

    os.kill(int(sshd.pid_path.read_text()), signal.SIGKILL)
    os.chown(sshd.keys_dir, 65534, 65534)
    try:
        attempt_extend(attempt=attempt, actor=reviewer, seconds=900, reason="machine crashed")
        attempt.refresh_from_db()
        assert (attempt.deadline_at - deadline_before).total_seconds() == 900
        assert attempt.machine_deadline_at == deadline_before
        audit = AuditEvent.objects.get(attempt=attempt, action="attempt.extend")
        assert audit.actor == reviewer and audit.data["machine"].startswith("pending: telling the machine failed")
        # The sweeper tries, fails, and keeps the change pending (never dropped).
        assert attempt.pk not in attempts_sweep()["synced"]
        attempt.refresh_from_db()
        assert attempt.machine_deadline_at == deadline_before and guard_deadline(lease) == epoch(deadline_before)
        assert lease_health_check(lease=lease).state == Lease.State.UNHEALTHY
    finally:
        os.chown(sshd.keys_dir, 0, 0)
        sshd.start()  # same port and host key (its state folder keeps them)

    assert lease_health_check(lease=lease).state == Lease.State.READY
    attempt.refresh_from_db()
    assert attempt.machine_deadline_at == attempt.deadline_at
    assert guard_deadline(lease) == epoch(attempt.deadline_at) == epoch(deadline_before) + 900
    synced = AuditEvent.objects.get(attempt=attempt, action="attempt.machine_deadline_synced")
    assert synced.data["old"] == deadline_before.isoformat() and synced.data["new"] == attempt.deadline_at.isoformat()
    assert lease_run(lease=lease, as_admin=False, command="echo still here").stdout == "still here\n"
