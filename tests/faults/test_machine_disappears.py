"""
The machine stops answering (its sshd frozen with SIGSTOP: connections open but nothing
answers, as with a hung or unreachable host): the expert sees a clear message, staff see the
lease unhealthy, the event is audited, and the clock policy for infrastructure failures is
applied: the wall clock keeps running (as in RE-Bench) and staff may extend it, audited, once
the machine answers again (its guard must learn the new deadline). Nothing on it is lost.
"""
import os
import signal

import pytest
from django.test import Client

from baseliner.attempts.lifecycle import attempt_extend
from baseliner.attempts.models import ClockEvent
from baseliner.attempts.services import AttemptActionError
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
        # Policy: the wall clock keeps running. An extension cannot be pushed to a machine that
        # does not answer: it is refused with a clear error and changes nothing (the machine's
        # guard would otherwise still lock the expert out at the old deadline).
        attempt.refresh_from_db()
        assert attempt.state == "running" and attempt.deadline_at == deadline_before
        with pytest.raises(AttemptActionError, match="The machine could not be told the new deadline, so nothing changed"):
            attempt_extend(attempt=attempt, actor=reviewer, seconds=600, reason="machine unreachable")
        assert not ClockEvent.objects.filter(attempt=attempt, kind="extend").exists()
    finally:
        os.kill(sshd_pid, signal.SIGCONT)

    lease = lease_health_check(lease=lease)
    assert lease.state == Lease.State.READY and lease.health_failures == 0
    # Once it answers, staff give back the time lost, audited.
    attempt_extend(attempt=attempt, actor=reviewer, seconds=600, reason="machine unreachable for 10 minutes")
    attempt.refresh_from_db()
    assert (attempt.deadline_at - deadline_before).total_seconds() == 600
    assert ClockEvent.objects.filter(attempt=attempt, kind="extend", seconds=600, actor=reviewer).exists()
    assert AuditEvent.objects.filter(attempt=attempt, actor=reviewer, action="attempt.extend").exists()
    assert 'id="machine-health" class="error" role="alert" hidden' in expert.get(f"/attempts/{attempt.pk}/").content.decode()
    assert lease_run(lease=lease, as_admin=False, command="cat ~/kept.txt").stdout == "work\n"
