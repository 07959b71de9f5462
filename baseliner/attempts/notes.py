"""
The expert's notes during an attempt (the workspace's Notes panel): free text, timestamped,
kept with the attempt, shown in review and exported scrubbed like every other free text.

Notes are added while the attempt is running or paused, by the attempt's own expert; once the
attempt has ended they are part of the record and can no longer be added to.
"""
from __future__ import annotations

from django.db import transaction

from . import clock
from .models import Attempt, Note
from .services import AttemptActionError, _locked
from .states import FINISHED_STATES, State

NOTE_MAX_CHARS = Note._meta.get_field("text").max_length  # 20000


class NoteRefused(AttemptActionError):
    """A note that was not saved; ``str()`` says why, ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def note_public(note: Note, *, attempt: Attempt) -> dict:
    """A note as the workspace lists it: when (wall time and attempt time) and what."""
    return {
        "id": note.pk,
        "text": note.text,
        "created": note.created.isoformat(),
        "elapsed_seconds": round(clock.time_used(attempt, at=note.created), 1) if attempt.started_at else None,
    }


def notes_for(*, attempt: Attempt) -> list[dict]:
    return [note_public(n, attempt=attempt) for n in attempt.notes.order_by("created", "pk")]


def note_add(*, attempt: Attempt, author, text) -> Note:
    """Add the expert's note. Refused with a message (nothing saved) when it is empty, too
    long, not written by the attempt's expert, or the attempt is not under way."""
    if not isinstance(text, str):
        raise NoteRefused("The note must be text.")
    text = text.strip()
    if not text:
        raise NoteRefused("The note is empty: write something first.")
    if len(text) > NOTE_MAX_CHARS:
        raise NoteRefused(f"The note is too long ({len(text)} characters; at most {NOTE_MAX_CHARS}). "
                                 "Nothing was saved: split it into several notes.", 413)
    with transaction.atomic():
        attempt = _locked(attempt)
        if author is None or author.pk != attempt.expert_id:
            raise NoteRefused("Only the attempt's expert can add notes to it.", 403)
        if attempt.state in FINISHED_STATES:
            raise NoteRefused("The attempt has ended, so notes can no longer be added. Your earlier notes are kept.", 409)
        if attempt.state not in (State.RUNNING, State.PAUSED):
            raise NoteRefused("Notes can be added once the attempt has started.", 409)
        return Note.objects.create(attempt=attempt, author=author, text=text)
