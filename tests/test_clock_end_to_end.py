"""The whole end of an attempt with real processes and no browser: a Celery worker with beat
provisions the machine (local provider), the clock runs out, and everything after it happens
on its own; and when the worker is down at the deadline, the machine locks the expert out by
itself and the sweeper finishes the job when the worker is back."""
import hashlib
import json
import os
import time

import pytest

from baseliner.attempts import clock
from baseliner.attempts.ending import archive_paths
from baseliner.attempts.models import Attempt
from baseliner.attempts.services import attempt_accept_rules
from baseliner.attempts.states import EndReason, State
from baseliner.machines.models import Lease
from baseliner.machines.services import attempt_request_start, lease_for_attempt, lease_run
from provisioning import base, ssh
from tests.conftest import WorkerProcess
from tests.machines_helpers import make_environment_folder, new_attempt, processes_of, teardown_all, unix_user_exists

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="per-lease Unix users need root")]


@pytest.fixture
def beat_worker(celery_worker, transactional_db, settings, tmp_path, monkeypatch):
    """A worker running beat with a 1 s sweep, alone on the queue (the session's worker is
    stopped, so nothing else runs tasks), sharing this test's machine settings."""
    celery_worker.stop()  # a graceful stop: SIGKILL would orphan its pool process
    for name, value in {
        "MACHINE_PROVIDER": "local", "LOCAL_SSHD_DIR": tmp_path / "local-sshd", "ENVIRONMENTS_DIR": tmp_path / "environments",
        "BASELINER_PREPARE_HOOKS": "", "CLOCK_SWEEP_SECONDS": "1", "ARCHIVE_CACHE_LIMIT_MB": "1",
    }.items():
        monkeypatch.setenv(name, str(value))
        if hasattr(settings, name) or name in ("LOCAL_SSHD_DIR", "ENVIRONMENTS_DIR"):
            setattr(settings, name, value if name != "BASELINER_PREPARE_HOOKS" else [])
    settings.ENVIRONMENTS_DIR.mkdir()
    base.get_provider.cache_clear()
    worker = WorkerProcess(tmp_path / "beat-worker.log", beat=True)
    worker.start()
    yield worker
    worker.stop()
    teardown_all()
    from provisioning.local import LocalProvider

    LocalProvider().sshd().stop()


def wait_for(predicate, timeout: float, what: str, worker=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    log = worker.log_path.read_text()[-3000:] if worker else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{log}")


def start_attempt(settings, limit: int) -> Attempt:
    attempt = new_attempt(source_path=make_environment_folder(settings.ENVIRONMENTS_DIR), time_limit_seconds=limit)
    attempt_accept_rules(attempt=attempt)
    attempt_request_start(attempt=attempt, user=attempt.expert)
    return attempt


def running(attempt, worker) -> Attempt:
    def ready():
        attempt.refresh_from_db()
        return attempt.state == State.RUNNING
    wait_for(ready, 60, "the machine to be ready and the clock to start", worker)
    return attempt


def live_processes(uid: int) -> list[str]:
    """The user's processes that are not already dead (a killed child may linger as a zombie
    until its parent reaps it)."""
    import subprocess

    out = subprocess.run(["ps", "-o", "stat=,pid=,args=", "-u", str(uid)], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.strip() and not line.strip().startswith("Z")]


def expert_can_run(lease) -> bool:
    try:
        return lease_run(lease=lease, as_admin=False, command="echo alive", timeout=10).stdout.strip() == "alive"
    except ssh.SSHError:
        return False


def ended_with_steps_done(attempt):
    attempt.refresh_from_db()
    return attempt.state == State.ENDED and attempt.end_steps_finished_at is not None


def test_an_attempt_ends_on_time_with_every_end_step_done_and_no_browser(beat_worker, settings):
    attempt = running(start_attempt(settings, limit=12), beat_worker)
    lease = lease_for_attempt(attempt=attempt)
    user, uid, home = lease.username, lease.provider_state["uid"], lease.provider_state["home"]
    result = lease_run(lease=lease, as_admin=False, command=(
        "mkdir -p notes .cache/models && printf 'final answer\\n' > notes/result.txt && "
        "head -c 2000000 /dev/urandom > .cache/models/weights.bin && nohup sleep 1000 >/dev/null 2>&1 &"))
    assert result.ok, result.stderr
    deadline = clock.deadline(attempt)

    wait_for(lambda: ended_with_steps_done(attempt), 45, "the attempt to end and its end steps to finish", beat_worker)
    assert attempt.end_reason == EndReason.TIMEOUT
    assert attempt.ended_at == deadline  # ended at the deadline, not when someone noticed
    assert clock.time_used(attempt) == 12
    steps = attempt.end_steps
    assert {k: v["status"] for k, v in steps.items()} == {
        "close_terminals": "done", "archive": "done", "final_scoring": "skipped", "final_result": "done", "teardown": "done",
    }, json.dumps(steps, indent=1)

    # The archive holds the expert's files with their hashes, and left the big cache out.
    archive, manifest_path = archive_paths(attempt)
    manifest = json.loads(manifest_path.read_text())
    files = {f["path"]: f for f in manifest["files"]}
    assert files["notes/result.txt"]["sha256"] == hashlib.sha256(b"final answer\n").hexdigest()
    assert files["solve.py"]["size"] == len("print('starting solution')\n")
    assert not any(p.startswith(".cache/") for p in files)
    assert [e["path"] for e in manifest["excluded"]] == [".cache"]
    assert manifest["archive"]["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()

    # The machine is gone: processes, user and home.
    assert Lease.objects.get(pk=lease.pk).state == Lease.State.TORN_DOWN
    assert processes_of(uid) == "" and not unix_user_exists(user) and not os.path.exists(home)


def test_the_deadline_holds_while_the_worker_is_stopped_and_the_sweeper_finishes_later(beat_worker, settings):
    attempt = running(start_attempt(settings, limit=15), beat_worker)
    beat_worker.stop()  # no worker, no beat, no sweeper from here on
    lease = lease_for_attempt(attempt=attempt)
    uid = lease.provider_state["uid"]
    lease_run(lease=lease, as_admin=False, command="nohup sleep 1000 >/dev/null 2>&1 &")
    assert expert_can_run(lease)
    deadline = clock.deadline(attempt)
    while clock.now() < deadline:
        time.sleep(0.2)
    # Within a few seconds of the deadline the machine's own guard has locked the expert out.
    wait_for(lambda: not expert_can_run(lease), 5, "the machine to lock the expert out")
    # It locks the account first, then kills: a login refused may come a moment before the kill.
    wait_for(lambda: live_processes(uid) == [], 5, "the guard to end every process of the expert")
    attempt.refresh_from_db()
    assert attempt.state == State.RUNNING  # nobody on the app side has noticed yet

    beat_worker.start()
    wait_for(lambda: ended_with_steps_done(attempt), 45, "the sweeper to end the attempt and run its end steps", beat_worker)
    assert (attempt.end_reason, attempt.ended_at) == (EndReason.TIMEOUT, deadline)
    assert attempt.end_steps["archive"]["status"] == "done"
    assert attempt.end_steps["teardown"]["status"] == "done"
    assert Lease.objects.get(pk=lease.pk).state == Lease.State.TORN_DOWN
