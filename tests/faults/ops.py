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
