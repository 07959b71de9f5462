"""
The attempt clock: the one place for its arithmetic.

Wall-clock time counts while an attempt is running, whether or not the expert is connected
(as in RE-Bench). Pauses (where the environment allows them) and staff extensions move the
deadline::

    deadline  = started + limit + extensions + finished pauses (+ the pause in progress)
    time used = (ended or now) - started - finished pauses - pause in progress so far

``now()`` is the single seam for the current time: tests move time by patching it, and every
caller passes ``at=`` through rather than reading the time twice.
"""
from datetime import datetime, timedelta

from django.utils import timezone


def now() -> datetime:
    """The current time, timezone-aware. Patched in tests to move the clock."""
    return timezone.now()


def _pause_in_progress(attempt, at: datetime) -> float:
    if attempt.paused_at is None:
        return 0.0
    return max(0.0, (at - attempt.paused_at).total_seconds())


def deadline(attempt, *, at: datetime | None = None) -> datetime | None:
    """When the attempt's time runs out; None before it starts."""
    if attempt.started_at is None:
        return None
    at = at or now()
    paused = attempt.paused_seconds + _pause_in_progress(attempt, at)
    return attempt.started_at + timedelta(seconds=attempt.time_limit_seconds + attempt.extension_seconds + paused)


def time_used(attempt, *, at: datetime | None = None) -> float:
    """Seconds of the limit used so far (pauses excluded); 0 before the start."""
    if attempt.started_at is None:
        return 0.0
    at = at or now()
    if attempt.ended_at is not None:
        at = min(at, attempt.ended_at)
    used = (at - attempt.started_at).total_seconds() - attempt.paused_seconds - _pause_in_progress(attempt, at)
    return max(0.0, min(used, total_allowed(attempt)))


def total_allowed(attempt) -> float:
    return attempt.time_limit_seconds + attempt.extension_seconds


def time_left(attempt, *, at: datetime | None = None) -> float:
    """Seconds left; never negative. The full limit before the start."""
    return max(0.0, total_allowed(attempt) - time_used(attempt, at=at))


def is_overdue(attempt, *, at: datetime | None = None) -> bool:
    """Whether a running attempt has used its time (a paused one never becomes overdue)."""
    if attempt.started_at is None or attempt.ended_at is not None or attempt.paused_at is not None:
        return False
    return time_left(attempt, at=at) <= 0

