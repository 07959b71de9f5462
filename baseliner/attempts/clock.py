"""
The attempt clock: the one place for its arithmetic.

Wall-clock time counts while an attempt is running, whether or not the expert is connected
(as in RE-Bench). Pauses (where the environment allows them), staff extensions and, where
the environment says scoring does not count against the clock, the time of each finished
scoring run move the deadline::

    deadline  = started + limit + extensions + scoring time given back
                + finished pauses (+ the pause in progress)
    time used = (ended or now) - started - finished pauses - pause in progress so far
                - scoring time given back

Scoring time given back is not time used (like a pause, unlike an extension): an entry's
elapsed time and the attempt's time used leave it out, and the limit stays the same.

``now()`` is the single seam for the current time: tests move time by patching it, and every
caller passes ``at=`` through rather than reading the time twice.
"""
import math
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
    not_counted = attempt.paused_seconds + _pause_in_progress(attempt, at) + attempt.scoring_returned_seconds
    return attempt.started_at + timedelta(seconds=attempt.time_limit_seconds + attempt.extension_seconds + not_counted)


def time_used(attempt, *, at: datetime | None = None) -> float:
    """Seconds of the limit used so far (pauses excluded); 0 before the start."""
    if attempt.started_at is None:
        return 0.0
    at = at or now()
    if attempt.ended_at is not None:
        at = min(at, attempt.ended_at)
    used = ((at - attempt.started_at).total_seconds() - attempt.paused_seconds - _pause_in_progress(attempt, at)
            - attempt.scoring_returned_seconds)
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



# Minutes-left warnings, largest first (RE-Bench-style reminders at 60, 15 and 5 minutes).
WARNING_MINUTES = (60, 15, 5)


def warning_due(attempt, *, at: datetime | None = None) -> int | None:
    """The minutes-left warning to send now, or None.

    A warning is due once time left has fallen to its threshold and it has not been sent
    (``attempt.warnings_sent``). When several are due at once (a short attempt, or the
    worker was down), only the smallest is sent: a "60 minutes left" note when 4 are left
    would mislead.
    """
    if attempt.started_at is None or attempt.ended_at is not None or attempt.paused_at is not None:
        return None
    left = time_left(attempt, at=at)
    if left <= 0:
        return None
    due = [m for m in WARNING_MINUTES if left <= m * 60 and m not in (attempt.warnings_sent or [])]
    return min(due) if due else None


def warnings_after_change(attempt, *, at: datetime | None = None) -> list[int]:
    """``warnings_sent`` once the deadline moved (an extension): a warning whose threshold
    is again ahead is re-armed; one below the time left stays sent only if a smaller one
    was sent too."""
    left = time_left(attempt, at=at)
    return sorted((m for m in (attempt.warnings_sent or []) if left <= m * 60), reverse=True)


def mark_warnings_sent(attempt, minutes: int) -> list[int]:
    """The warnings to record as sent after sending ``minutes``: it and every larger one."""
    return sorted({*(attempt.warnings_sent or []), *(m for m in WARNING_MINUTES if m >= minutes)}, reverse=True)


def scoring_time_to_return(*, counts_against_clock: bool, trigger: str, seconds: float | None,
                           scoring_timeout: float) -> float:
    """Seconds of a finished scoring run to give back to the attempt's clock (0: none).

    Only where the environment says scoring does not count against the clock, and only for
    runs made while the attempt runs (the Score button, the ``score`` command, staff): the
    final scoring runs after the end, when there is no clock to give time back to. An error
    or a timeout gives its time back like a success (the expert waited all the same). The
    measured time is capped at the scorer's timeout plus a minute (the runner's own bound),
    so a wrong measurement cannot hand out hours."""
    if counts_against_clock or trigger == "final" or seconds is None:
        return 0.0
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        return 0.0
    if not math.isfinite(seconds) or seconds <= 0:
        return 0.0
    return min(seconds, float(scoring_timeout) + 60.0)


def pause_length(attempt, *, at: datetime | None = None) -> float:
    """Seconds of the pause in progress (0 when not paused)."""
    return _pause_in_progress(attempt, at or now())


def epoch(moment: datetime | None) -> int | None:
    """A moment as whole Unix seconds, rounded up (the machine's guard compares with
    ``date +%s``; rounding up never ends an attempt early)."""
    if moment is None:
        return None
    ts = moment.timestamp()
    return int(ts) if ts == int(ts) else int(ts) + 1
