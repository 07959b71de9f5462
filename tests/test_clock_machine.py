"""The clock on a real machine (the local provider over loopback SSH): a pause freezes the
expert, the machine's own guard locks the expert out at the deadline with nothing else
running, and the end steps archive, score and tear down."""
import json
import os
import time
from datetime import timedelta

import pytest

from baseliner.attempts import clock
from baseliner.attempts.lifecycle import attempt_machine_sync, attempt_pause, attempt_resume
from baseliner.attempts.models import ClockEvent
from baseliner.attempts.states import State
from baseliner.machines.models import Lease
from baseliner.machines.services import lease_run
from provisioning import base, ssh
from provisioning.local import LocalProvider
from tests.machines_helpers import make_environment_folder, new_attempt, start, teardown_all

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="per-lease Unix users need root")]


def expert_can_run(lease) -> bool:
    """Whether the expert can log in over SSH and run a command."""
    try:
        return lease_run(lease=lease, as_admin=False, command="echo alive", timeout=10).stdout.strip() == "alive"
    except ssh.SSHError:
        return False


def live_processes(uid: int) -> list[str]:
    """The user's processes that are not already dead (a killed child may linger as a zombie
    until its parent reaps it)."""
    import subprocess

    out = subprocess.run(["ps", "-o", "stat=,pid=,args=", "-u", str(uid)], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.strip() and not line.strip().startswith("Z")]


def process_states(uid: int) -> set[str]:
    import subprocess

    out = subprocess.run(["ps", "-o", "stat=", "-u", str(uid)], capture_output=True, text=True).stdout
    return {line.strip()[0] for line in out.splitlines() if line.strip()}


def test_a_pause_freezes_the_shell_and_is_not_time_used(local, settings, django_capture_on_commit_callbacks):
    attempt = new_attempt(source_path=make_environment_folder(settings.ENVIRONMENTS_DIR), pause_policy="allowed")
    lease = start(attempt)
    uid = lease.provider_state["uid"]
    lease_run(lease=lease, as_admin=False, command="nohup sleep 1000 >/dev/null 2>&1 & tmux new -d -s main 'sleep 999'")
    assert expert_can_run(lease) and process_states(uid) <= {"S", "R"}

    attempt_pause(attempt=attempt, actor=attempt.expert, reason="a break")
    assert expert_can_run(lease) is False
    assert process_states(uid) == {"T"}  # every process of the expert is stopped
    time.sleep(2)
    attempt.refresh_from_db()
    used_while_paused = clock.time_used(attempt)
    time.sleep(1)
    attempt.refresh_from_db()
    assert clock.time_used(attempt) == pytest.approx(used_while_paused, abs=1e-6)

    attempt = attempt_resume(attempt=attempt, actor=attempt.expert)
    assert expert_can_run(lease) is True
    assert "T" not in process_states(uid)
    assert lease_run(lease=lease, as_admin=False, command="tmux ls").stdout.startswith("main:")
    paused = attempt.clock_events.get(kind=ClockEvent.Kind.RESUME).seconds
    assert paused >= 3
    assert clock.time_used(attempt) == pytest.approx((clock.now() - attempt.started_at).total_seconds() - paused, abs=0.5)


def test_the_machine_guard_locks_the_expert_out_at_the_deadline_on_its_own(local, settings):
    """Nothing but the machine runs here: no worker, no sweeper, no request."""
    attempt = new_attempt(source_path=make_environment_folder(settings.ENVIRONMENTS_DIR), time_limit_seconds=4)
    lease = start(attempt)
    uid = lease.provider_state["uid"]
    assert attempt_machine_sync(attempt_id=attempt.pk) == "deadline set"
    lease_run(lease=lease, as_admin=False, command="nohup sleep 1000 >/dev/null 2>&1 &")
    assert expert_can_run(lease)
    deadline = clock.deadline(attempt)
    while clock.now() < deadline - timedelta(seconds=1):
        time.sleep(0.2)
    assert expert_can_run(lease)  # a second before the deadline it still works
    time.sleep(3)
    assert expert_can_run(lease) is False
    assert live_processes(uid) == []
    fired = int(lease_run(lease=lease, command=f"cat {lease.provider_state['machine_dir']}/clock/fired").stdout)
    assert clock.epoch(deadline) <= fired <= clock.epoch(deadline) + 2
    attempt.refresh_from_db()
    assert attempt.state == State.RUNNING  # the app was not asked; the machine held the limit itself
    assert Lease.objects.get(pk=lease.pk).state == Lease.State.READY


def test_a_warning_is_printed_in_every_open_terminal(local, settings):
    attempt = new_attempt(source_path=make_environment_folder(settings.ENVIRONMENTS_DIR), time_limit_seconds=3600)
    lease = start(attempt)
    lease_run(lease=lease, as_admin=False, command="tmux new -d -s main -x 120 -y 20 && tmux new-window -d -t main")
    from baseliner.attempts.lifecycle import attempt_warn

    assert attempt_warn(attempt=attempt, at=attempt.started_at + timedelta(minutes=45)) == 15
    for window in ("main:0", "main:1"):
        screen = lease_run(lease=lease, as_admin=False, command=f"tmux capture-pane -p -t {window}").stdout
        assert "*** baseliner: 15 minutes left in this attempt." in screen, screen
