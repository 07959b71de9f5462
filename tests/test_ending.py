"""The end steps: recorded one by one, idempotent, a failure visible and not skipping the rest."""
from datetime import timedelta

import pytest

from baseliner.attempts import clock, ending
from baseliner.attempts.ending import MAX_TRIES, attempt_end_steps_run
from baseliner.attempts.lifecycle import attempt_end
from baseliner.attempts.services import attempt_clock_start, attempt_transition
from baseliner.attempts.states import EndReason, State
from baseliner.scoring.models import ScoreEntry
from tests import factories

pytestmark = pytest.mark.django_db


def ended_attempt(**env):
    attempt = factories.attempt(time_limit_seconds=3600, **env)
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    attempt = attempt_clock_start(attempt=attempt, at=clock.now() - timedelta(minutes=30))
    return attempt


def score(attempt, seq, raw, status=ScoreEntry.Status.OK):
    env = attempt.environment
    norm = None if raw is None else (raw - env.y_start) / (env.y_ref - env.y_start)
    return ScoreEntry.objects.create(attempt=attempt, sequence=seq, created=clock.now(), elapsed_seconds=seq * 60,
                                     raw_score=raw, normalized_score=norm, status=status, trigger=ScoreEntry.Trigger.BUTTON)


def test_end_steps_without_a_machine_fix_the_best_score_and_finish(monkeypatch):
    monkeypatch.setattr(ending, "RETRY_PAUSE_SECONDS", 0)
    attempt = ended_attempt(aggregation="best", y_start=0.0, y_ref=10.0)
    score(attempt, 1, 3.0)
    best = score(attempt, 2, 7.0)
    score(attempt, 3, 5.0)
    attempt_end(attempt=attempt, reason=EndReason.EXPERT, actor=attempt.expert)
    steps = attempt_end_steps_run(attempt_id=attempt.pk)
    assert {k: v["status"] for k, v in steps.items()} == {
        "close_terminals": "done", "archive": "skipped", "final_scoring": "skipped", "final_result": "done", "teardown": "skipped",
    }
    attempt.refresh_from_db()
    assert attempt.final_score == best and attempt.final_normalized_score == pytest.approx(0.7)
    assert attempt.end_steps_finished_at is not None
    # Idempotent: a second run changes nothing.
    before = attempt.end_steps
    attempt_end_steps_run(attempt_id=attempt.pk)
    attempt.refresh_from_db()
    assert attempt.end_steps == before


def test_lower_is_better_best_score_counts():
    attempt = ended_attempt(direction="lower", y_start=10.0, y_ref=2.0)
    score(attempt, 1, 8.0)
    best = score(attempt, 2, 4.0)
    score(attempt, 3, None, ScoreEntry.Status.INVALID)
    attempt_end(attempt=attempt, reason=EndReason.EXPERT, actor=attempt.expert)
    attempt_end_steps_run(attempt_id=attempt.pk)
    attempt.refresh_from_db()
    assert attempt.final_score == best and attempt.final_normalized_score == pytest.approx(0.75)


def test_a_failing_step_is_recorded_for_staff_and_does_not_skip_the_others(monkeypatch):
    monkeypatch.setattr(ending, "RETRY_PAUSE_SECONDS", 0)

    def archive_breaks(attempt):
        raise OSError("disk full on the archive volume")

    monkeypatch.setitem(ending.STEP_FUNCTIONS, "archive", archive_breaks)
    attempt = ended_attempt()
    score(attempt, 1, 0.5)
    attempt_end(attempt=attempt, reason=EndReason.TIMEOUT, at=attempt.started_at + timedelta(hours=2))
    steps = attempt_end_steps_run(attempt_id=attempt.pk)
    assert steps["archive"]["status"] == "failed"
    assert steps["archive"]["error"] == "OSError: disk full on the archive volume"
    assert steps["final_result"]["status"] == "done"
    # The machine is kept while the archive may still succeed...
    assert steps["teardown"]["status"] == "waiting"
    attempt.refresh_from_db()
    assert attempt.end_steps_finished_at is None and attempt.final_normalized_score == 0.5
    # ...and once the archive is out of retries, the rest runs.
    for _ in range(MAX_TRIES):
        steps = attempt_end_steps_run(attempt_id=attempt.pk)
    assert steps["archive"]["tries"] == MAX_TRIES
    assert steps["teardown"]["status"] == "skipped"
    attempt.refresh_from_db()
    assert attempt.end_steps_finished_at is not None


def test_staff_see_the_end_steps_in_the_admin(client, monkeypatch):
    monkeypatch.setattr(ending, "RETRY_PAUSE_SECONDS", 0)
    attempt = ended_attempt()
    attempt_end(attempt=attempt, reason=EndReason.EXPERT, actor=attempt.expert)
    attempt_end_steps_run(attempt_id=attempt.pk)
    client.force_login(factories.user(superuser=True))
    html = client.get(f"/admin/attempts/attempt/{attempt.pk}/change/").content.decode()
    assert "close_terminals" in html and "no machine to archive" in html


def test_staff_can_run_failed_end_steps_again_from_the_admin(client, monkeypatch):
    monkeypatch.setattr(ending, "RETRY_PAUSE_SECONDS", 0)
    monkeypatch.setattr(ending, "MAX_TRIES", 1)
    calls = []

    def archive_breaks_once(attempt):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("archive volume not mounted")
        raise ending.StepSkipped("no machine to archive")

    monkeypatch.setitem(ending.STEP_FUNCTIONS, "archive", archive_breaks_once)
    attempt = ended_attempt()
    attempt_end(attempt=attempt, reason=EndReason.EXPERT, actor=attempt.expert)
    attempt_end_steps_run(attempt_id=attempt.pk)
    attempt.refresh_from_db()
    assert attempt.end_steps["archive"]["status"] == "failed" and attempt.end_steps_finished_at is not None
    staff = factories.user(staff=True)
    client.force_login(staff)
    client.post(f"/admin/attempts/attempt/{attempt.pk}/clock/", {"action": "end_steps", "reason": "volume fixed"})
    attempt.refresh_from_db()
    assert attempt.end_steps_finished_at is None and attempt.end_steps["archive"]["tries"] == 0
    attempt_end_steps_run(attempt_id=attempt.pk)  # what the queued task does
    attempt.refresh_from_db()
    assert attempt.end_steps["archive"]["status"] == "skipped"
    from baseliner.audit.models import AuditEvent

    assert AuditEvent.objects.filter(action="attempt.end_steps_restart", actor=staff, attempt=attempt).exists()

