"""Builders of finished attempts with score logs, commands and recordings, for the review,
analysis and export tests. They write through the attempt services where one exists and
create log rows directly (as the recorder and scorer would)."""
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

from django.conf import settings

from baseliner.attempts.services import attempt_clock_start, attempt_mark_ended, attempt_transition
from baseliner.attempts.states import State
from baseliner.recording.models import CommandRecord, Recording
from baseliner.scoring.services import Outcome, score_record
from baseliner.surveys.models import Survey, SurveyResponse
from tests import factories

T0 = datetime(2026, 3, 14, 9, 26, 53, tzinfo=timezone.utc)


def finished_attempt(*, env=None, expert=None, cohort=None, started=T0, hours=8.0, **env_overrides):
    """An attempt that ran from ``started`` for ``hours`` and ended."""
    attempt = factories.attempt(expert=expert, env=env, **env_overrides)
    if cohort is not None:
        attempt.assignment.cohort = cohort
        attempt.assignment.save(update_fields=["cohort"])
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    attempt_clock_start(attempt=attempt, at=started)
    attempt_mark_ended(attempt=attempt, reason="expert", at=started + timedelta(hours=hours))
    attempt.refresh_from_db()
    return attempt


def running_attempt(**kw):
    from baseliner.attempts import clock

    attempt = factories.attempt(**kw)
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    attempt_clock_start(attempt=attempt, at=clock.now() - timedelta(hours=1))
    attempt.refresh_from_db()
    return attempt


def score(attempt, elapsed, raw, *, status="ok", trigger="button", message="", details=None):
    """Append to the score log through the scoring service, as if the run finished at
    ``elapsed`` seconds into the attempt (the clock's one seam is moved there)."""
    at = attempt.started_at + timedelta(seconds=elapsed)
    outcome = Outcome(raw_score=raw if status == "ok" else None, status=status, message=message, details=details or {})
    with mock.patch("baseliner.attempts.clock.now", return_value=at):
        return score_record(attempt=attempt, outcome=outcome, trigger=trigger, requested_at=at, elapsed_seconds=elapsed)


def survey_answer(attempt, answers: dict):
    survey, _ = Survey.objects.get_or_create(
        name="default", version=1,
        defaults={"title": "After your attempt", "questions": [
            {"id": "score_matched_expectations", "text": "Did the score match your expectations?", "type": "choice",
             "choices": ["yes", "partly", "no"]},
            {"id": "comments", "text": "Anything else?", "type": "text"},
            {"id": "difficulty", "text": "How hard was the task?", "type": "likert",
             "choices": ["Very easy", "Easy", "Moderate", "Hard", "Very hard"]},
        ]},
    )
    return SurveyResponse.objects.create(attempt=attempt, survey=survey, respondent=attempt.expert, answers=answers,
                                         submitted_at=attempt.ended_at)


def command(attempt, offset, text, *, cwd="~", exit_status=0, duration=1.0, terminal="main"):
    return CommandRecord.objects.create(
        attempt=attempt, terminal=terminal, started_at=attempt.started_at + timedelta(seconds=offset),
        elapsed_seconds=offset, duration_seconds=duration, cwd=cwd, command=text, exit_status=exit_status,
    )


def recording(attempt, events, *, terminal="main", offset=0.0, header_extra=None, name=None):
    """Write an asciicast v2 file under RECORDINGS_DIR and its Recording row."""
    started = attempt.started_at + timedelta(seconds=offset)
    rel = Path(f"test-{attempt.pk}-{started.timestamp():.0f}-{name or terminal}.cast")
    path = Path(settings.RECORDINGS_DIR) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"version": 2, "width": 80, "height": 24, "timestamp": int(started.timestamp())}
    header.update(header_extra or {})
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(header) + "\n")
        for ev in events:
            f.write(json.dumps(ev) + "\n")
    end = events[-1][0] if events else 0
    return Recording.objects.create(attempt=attempt, terminal=terminal, path=str(rel), started_at=started,
                                    ended_at=started + timedelta(seconds=end), width=80, height=24)
