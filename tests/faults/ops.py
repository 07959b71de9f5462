"""
Small Django operations the fault tests run in a subprocess on the private database
(``Stack.call("seed_attempt")``). Each returns something JSON-serialisable.
"""
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore

PASSWORD = "fault-test-password-9f3a"


def _session_for(user) -> str:
    s = SessionStore()
    s[SESSION_KEY] = str(user.pk)
    s[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    s[HASH_SESSION_KEY] = user.get_session_auth_hash()
    s.create()
    return s.session_key


def seed_attempt(title: str = "Fault-tolerant kernels") -> dict:
    """An expert (with a logged-in session) assigned to one environment."""
    from tests import factories

    expert = factories.user(password=PASSWORD)
    attempt = factories.attempt(expert=expert, title=title)
    return {"attempt": attempt.pk, "expert": expert.username, "session": _session_for(expert)}


def session_for(username: str) -> str:
    return _session_for(get_user_model().objects.get(username=username))


def note_texts(attempt_id: int) -> list[str]:
    from baseliner.attempts.models import Note

    return list(Note.objects.filter(attempt_id=attempt_id).values_list("text", flat=True))


def add_note(attempt_id: int, text: str) -> int:
    from baseliner.attempts.models import Attempt, Note

    attempt = Attempt.objects.get(pk=attempt_id)
    return Note.objects.create(attempt=attempt, author=attempt.expert, text=text).pk


def send_event(attempt_id: int, kind: str, payload: dict) -> None:
    from baseliner.web.events import attempt_event

    attempt_event(attempt_id, kind, payload)


def heartbeat() -> str | None:
    from baseliner.web.tasks import last_worker_heartbeat

    return last_worker_heartbeat()


def enqueue_heartbeat() -> None:
    from baseliner.web.tasks import worker_heartbeat

    worker_heartbeat.delay()


def seed_scoring_attempt(machine_port: int, scoring_timeout: int = 5) -> dict:
    """A running attempt whose lease points at ``machine_port`` on loopback, and one Score press."""
    import json
    from datetime import timedelta

    from django.utils import timezone

    from baseliner.machines.models import Lease
    from baseliner.scoring.services import score_request
    from provisioning import ssh
    from tests import factories

    expert = factories.user(password=PASSWORD)
    attempt = factories.attempt(expert=expert, title="Scored under fire", scoring_timeout_seconds=scoring_timeout,
                                scoring={"command": "python3 score.py"})
    now = timezone.now()
    type(attempt).objects.filter(pk=attempt.pk).update(state="running", started_at=now, rules_accepted_at=now,
                                                      deadline_at=now + timedelta(hours=8))
    attempt.refresh_from_db()
    key, _ = ssh.generate_key()
    _, host_pub = ssh.generate_key()
    lease = Lease.objects.create(
        attempt=attempt, provider="local", state="ready", address="127.0.0.1", port=machine_port, username="blfault",
        host_key=" ".join(host_pub.split()[:2]), ready_at=now,
        provider_state={"home": "/home/blfault", "protected_dir": "/opt/x/protected", "protected_group": "bpfault",
                        "scorer_user": "bsfault", "machine_dir": "/opt/x", "token": "0000000000"},
    )
    lease.set_credentials(json.dumps({"expert_key": key, "admin_key": key, "admin_user": "root"}))
    lease.save(update_fields=["credentials_encrypted"])
    run, _ = score_request(attempt=attempt, trigger="button", user=expert)
    return {"attempt": attempt.pk, "run": run.pk, "session": _session_for(expert)}


def press_score(attempt_id: int) -> int:
    from baseliner.attempts.models import Attempt
    from baseliner.scoring.services import score_request

    attempt = Attempt.objects.get(pk=attempt_id)
    return score_request(attempt=attempt, trigger="button", user=attempt.expert)[0].pk


def scoring_state(attempt_id: int) -> dict:
    from baseliner.attempts.models import Attempt
    from baseliner.scoring.models import ScoreEntry, ScoreRun
    from baseliner.scoring.services import score_log_verify

    attempt = Attempt.objects.get(pk=attempt_id)
    return {
        "attempt_state": attempt.state,
        "runs": {str(r.pk): [r.status, r.entry_id] for r in ScoreRun.objects.filter(attempt_id=attempt_id)},
        "entries": [[e.pk, e.sequence, e.status, e.message, e.details] for e in ScoreEntry.objects.filter(attempt_id=attempt_id)],
        "chain_problems": score_log_verify(attempt=attempt),
    }


def sweep_scoring_runs() -> dict:
    from baseliner.scoring.services import score_runs_sweep

    return score_runs_sweep()
