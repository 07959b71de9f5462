"""Fixtures for the security suite: a victim expert with one of everything, an intruder."""
import secrets
from datetime import timedelta

import pytest
from django.utils import timezone

from tests import factories
from tests.security.routes import Victim


def make_victim() -> Victim:
    from baseliner.attempts.models import ClockEvent, Note
    from baseliner.machines.models import Lease
    from baseliner.recording.models import CommandRecord, EditorSave, Recording
    from baseliner.scoring.models import ScoreEntry
    from baseliner.surveys.models import Survey, SurveyResponse

    marker = f"VICTIM{secrets.token_hex(4)}"
    user = factories.user(username=f"victim{secrets.token_hex(3)}{marker.lower()}")
    attempt = factories.attempt(expert=user, title=f"{marker} environment", instructions=f"{marker} instructions")
    now = timezone.now()
    type(attempt).objects.filter(pk=attempt.pk).update(
        state="running", started_at=now - timedelta(hours=1), deadline_at=now + timedelta(hours=7),
        rules_accepted_at=now - timedelta(hours=1), last_error=f"{marker} error",
    )
    attempt.refresh_from_db()
    ClockEvent.objects.create(attempt=attempt, kind="start", at=now - timedelta(hours=1))
    lease = Lease.objects.create(
        attempt=attempt, provider="local", state="ready", address="127.0.0.1", port=22,
        username=f"bl{secrets.token_hex(4)}", host_key=f"ssh-ed25519 AAAA{marker}", nonce=secrets.token_hex(16),
        provider_state={"home": f"/home/{marker}"},
    )
    lease.set_credentials(f'{{"expert_key": "-----BEGIN OPENSSH PRIVATE KEY-----\\n{marker}\\n", "admin_user": "root"}}')
    lease.save(update_fields=["credentials_encrypted"])
    objects = {
        "lease": lease,
        "note": Note.objects.create(attempt=attempt, author=user, text=f"{marker} note"),
        "recording": Recording.objects.create(attempt=attempt, terminal="main", path=f"{attempt.pk}/{marker}.cast", started_at=now),
        "command": CommandRecord.objects.create(attempt=attempt, started_at=now, elapsed_seconds=60, command=f"echo {marker}"),
        "editor_save": EditorSave.objects.create(attempt=attempt, path=f"{marker}.py", created=now, elapsed_seconds=60, size=1, sha256="0" * 64),
        "score_entry": ScoreEntry.objects.create(
            attempt=attempt, sequence=1, created=now, elapsed_seconds=60, raw_score=0.5, normalized_score=0.5,
            status="ok", message=f"{marker} score message", details={"secret": marker}, trigger="button",
        ),
    }
    from baseliner.scoring.models import ScoreRun

    objects["score_run"] = ScoreRun.objects.create(attempt=attempt, trigger="button", requested_at=now, elapsed_seconds=60,
                                                   entry=objects["score_entry"], status="done")
    from baseliner.review.models import Annotation, ExportJob

    objects["annotation"] = Annotation.objects.create(attempt=attempt, tag="noteworthy", comment=f"{marker} staff comment")
    objects["export_job"] = ExportJob.objects.create(status="done", message=f"{marker} export", path=f"{marker}.zip")
    survey, _ = Survey.objects.get_or_create(name="security-suite", version=1, defaults={"title": "Survey"})
    objects["survey_response"] = SurveyResponse.objects.create(attempt=attempt, survey=survey, respondent=user,
                                                               answers={"q": f"{marker} answer"})
    return Victim(user=user, attempt=attempt, marker=marker, objects=objects)


def snapshot(victim: Victim) -> dict:
    """Everything an intruder's request could change about the victim's attempt."""
    from django.forms.models import model_to_dict

    attempt = type(victim.attempt).objects.get(pk=victim.attempt.pk)
    related = {}
    for rel in ("notes", "clock_events", "leases", "recordings", "commands", "editor_saves", "score_entries", "score_runs",
                "audit_events", "annotations"):
        related[rel] = sorted(tuple(sorted(model_to_dict(o).items(), key=str)) for o in getattr(attempt, rel).all())
    return {"attempt": model_to_dict(attempt), **{k: str(v) for k, v in related.items()}}


@pytest.fixture
def victim(db):
    return make_victim()


@pytest.fixture
def intruder(db):
    """Another expert, with an attempt of their own."""
    return factories.attempt().expert
