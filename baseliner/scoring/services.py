"""
The score log: requesting a scoring run, recording its result, and checking the log.

Requests (the Score button, the machine's ``score`` command, the final scoring) become a
``ScoreRun``; a Celery task executes runs of one attempt one at a time, in order, and each run
ends in exactly one ``ScoreEntry`` written by ``score_record`` — whatever happened on the
machine (a crash, a timeout, NaN) is an entry with a clear message, never a broken attempt.

Tamper evidence: entries are hash-chained. ``entry_hash = sha256(prev_hash + canonical JSON of
the entry's fields)`` and ``prev_hash`` is the previous entry's ``entry_hash`` ("" for the
first), so editing, deleting or reordering any entry breaks every hash after it;
``score_log_verify`` recomputes the chain.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction

from baseliner.attempts import clock
from baseliner.attempts.models import Attempt
from baseliner.attempts.states import State
from baseliner.catalog.models import Aggregation
from baseliner.web.events import attempt_event

from .models import ScoreEntry, ScoreRun
from .normalization import is_better, normalize_for


log = logging.getLogger(__name__)


class ScoringRefused(Exception):
    """A request the attempt's state refuses; ``str()`` is shown to the user."""


@dataclass
class Outcome:
    """What one execution of a scorer produced (see ``runner.py``)."""

    raw_score: float | None
    status: str
    message: str
    details: dict = field(default_factory=dict)
    scoring_seconds: float | None = None


# --- hashing ----------------------------------------------------------------------------

def _float(v):
    return None if v is None else repr(float(v))


def entry_payload(entry: ScoreEntry) -> dict:
    """The fields the hash covers, in a canonical form (floats by repr, times in ISO)."""
    return {
        "attempt": entry.attempt_id,
        "sequence": entry.sequence,
        "created": entry.created.isoformat(),
        "requested_at": entry.requested_at.isoformat() if entry.requested_at else None,
        "elapsed_seconds": _float(entry.elapsed_seconds),
        "raw_score": _float(entry.raw_score),
        "normalized_score": _float(entry.normalized_score),
        "status": entry.status,
        "message": entry.message,
        "details": entry.details,
        "trigger": entry.trigger,
        "triggered_by": entry.triggered_by_id,
        "scoring_seconds": _float(entry.scoring_seconds),
    }


def compute_entry_hash(entry: ScoreEntry) -> str:
    canonical = json.dumps(entry_payload(entry), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((entry.prev_hash + canonical).encode()).hexdigest()


def score_log_verify(*, attempt: Attempt) -> list[str]:
    """Problems found in ``attempt``'s score log; an empty list means the chain is intact."""
    problems, prev, expected_seq = [], "", 1
    for entry in ScoreEntry.objects.filter(attempt=attempt).order_by("sequence"):
        if entry.sequence != expected_seq:
            problems.append(f"entry #{entry.sequence}: expected sequence {expected_seq} (an entry is missing)")
        if entry.prev_hash != prev:
            problems.append(f"entry #{entry.sequence}: does not follow the entry before it (prev_hash differs)")
        if compute_entry_hash(entry) != entry.entry_hash:
            problems.append(f"entry #{entry.sequence}: its contents were changed after it was recorded")
        prev, expected_seq = entry.entry_hash, entry.sequence + 1
    return problems


# --- recording --------------------------------------------------------------------------

def entry_public(entry: ScoreEntry, *, show_raw: bool) -> dict:
    """An entry as the expert may see it: never ``details``; the raw score only if allowed."""
    return {
        "sequence": entry.sequence,
        "created": entry.created.isoformat(),
        "elapsed_seconds": entry.elapsed_seconds,
        "raw_score": entry.raw_score if show_raw else None,
        "normalized_score": entry.normalized_score,
        "status": entry.status,
        "status_label": entry.get_status_display(),
        "message": entry.message,
        "trigger": entry.trigger,
        "scoring_seconds": entry.scoring_seconds,
    }


def score_record(*, attempt: Attempt, outcome: Outcome, trigger: str, triggered_by=None, requested_at=None,
                 elapsed_seconds: float | None = None) -> ScoreEntry:
    """Append ``outcome`` to ``attempt``'s score log: normalize, number, chain, announce.

    A raw score that is not a finite number turns the entry into an error, whatever the
    scorer said. The attempt row lock serializes sequence numbers and the chain."""
    raw, status, message = outcome.raw_score, outcome.status, outcome.message
    details = dict(outcome.details or {})
    if raw is not None:
        try:
            raw = float(raw)
        except (TypeError, ValueError):
            details["bad_raw_score"] = repr(raw)[:200]
            raw, status, message = None, ScoreEntry.Status.ERROR, "The scorer returned a score that is not a number."
    if raw is not None and not math.isfinite(raw):
        details["bad_raw_score"] = repr(raw)
        raw, status, message = None, ScoreEntry.Status.ERROR, f"The scorer returned {details['bad_raw_score']}, not a finite number; this run does not count."
    if status == ScoreEntry.Status.OK and raw is None:
        status = ScoreEntry.Status.INVALID
    if status != ScoreEntry.Status.OK:
        raw = None
    with transaction.atomic():
        attempt = Attempt.objects.select_for_update().select_related("environment").get(pk=attempt.pk)
        last = ScoreEntry.objects.filter(attempt=attempt).order_by("-sequence").first()
        now = clock.now()
        entry = ScoreEntry(
            attempt=attempt,
            sequence=(last.sequence + 1) if last else 1,
            created=now,
            requested_at=requested_at or now,
            elapsed_seconds=elapsed_seconds if elapsed_seconds is not None else clock.time_used(attempt, at=requested_at or now),
            raw_score=raw,
            normalized_score=normalize_for(attempt.environment, raw),
            status=status,
            message=(message or "")[:5000],
            details=details,
            trigger=trigger,
            triggered_by=triggered_by if (triggered_by is not None and triggered_by.is_authenticated) else None,
            scoring_seconds=outcome.scoring_seconds,
            prev_hash=last.entry_hash if last else "",
        )
        entry.entry_hash = compute_entry_hash(entry)
        entry.save()
        counting = score_counting_entry(attempt=attempt)
        attempt_event(attempt.pk, "score", {
            "entry": entry_public(entry, show_raw=attempt.environment.score_visible_to_expert),
            "counting_sequence": counting.sequence if counting else None,
        })
    return entry


def score_counting_entry(*, attempt: Attempt) -> ScoreEntry | None:
    """The entry that counts: the best OK entry, or for ``last`` environments the final entry
    that was not a scoring error (if that final solution was invalid, nothing counts)."""
    entries = list(ScoreEntry.objects.filter(attempt=attempt).order_by("sequence"))
    env = attempt.environment
    if env.aggregation == Aggregation.LAST:
        for entry in reversed(entries):
            if entry.status == ScoreEntry.Status.ERROR:
                continue
            return entry if entry.status == ScoreEntry.Status.OK else None
        return None
    best = None
    for entry in entries:
        if entry.status != ScoreEntry.Status.OK:
            continue
        if best is None or is_better(entry.raw_score, best.raw_score, direction=env.direction):
            best = entry
    return best


# --- runs -------------------------------------------------------------------------------

def _enqueue(run_id: int) -> None:
    """Hand a queued run to a worker. The run is already in the database: if the broker (Redis)
    is down, the request that asked for it still succeeds, and ``score_runs_sweep`` hands the
    run to a worker once the broker is back. Nothing accepted is lost."""
    from .tasks import score_run_execute

    try:
        score_run_execute.delay(run_id)
    except Exception:  # kombu.exceptions.OperationalError and friends
        log.warning("could not queue scoring run %s (broker unavailable); the sweep will retry", run_id, exc_info=True)


SCORABLE_STATES = (State.RUNNING,)


def score_request(*, attempt: Attempt, trigger: str, user=None) -> tuple[ScoreRun, str]:
    """Queue a scoring run for ``attempt``. Returns the run and a message for the requester
    (which says when another run is in progress and this one waits for it)."""
    from baseliner.attempts.lifecycle import attempt_enforce_deadline

    if trigger != ScoreEntry.Trigger.FINAL:
        # Time up but not yet swept: end the attempt now; the state check below then refuses.
        attempt_enforce_deadline(attempt=attempt)
    with transaction.atomic():
        attempt = Attempt.objects.select_for_update().select_related("environment").get(pk=attempt.pk)
        if trigger == ScoreEntry.Trigger.FINAL:
            if attempt.state not in (State.RUNNING, State.PAUSED, State.ENDED):
                raise ScoringRefused("There is nothing to score: the attempt did not run.")
        elif attempt.state == State.PAUSED:
            raise ScoringRefused("The attempt is paused: resume it to score.")
        elif attempt.state not in SCORABLE_STATES:
            raise ScoringRefused("Scoring is only possible while the attempt is running.")
        now = clock.now()
        ahead = ScoreRun.objects.filter(attempt=attempt, status__in=[ScoreRun.Status.QUEUED, ScoreRun.Status.RUNNING]).count()
        run = ScoreRun.objects.create(
            attempt=attempt, trigger=trigger, requested_at=now, elapsed_seconds=clock.time_used(attempt, at=now),
            triggered_by=user if (user is not None and user.is_authenticated) else None,
        )
        if ahead:
            message = (f"Another scoring run is in progress; yours is queued and starts when "
                       f"{'it finishes' if ahead == 1 else f'the {ahead} runs before it finish'}.")
        else:
            message = "Scoring started."
        attempt_event(attempt.pk, "scoring", {"run": run.pk, "status": run.status, "ahead": ahead, "message": message})
        transaction.on_commit(lambda: _enqueue(run.pk))
    return run, message


def _stale_grace() -> timedelta:
    """A run still "running" this long after its scorer's timeout died with its worker."""
    return timedelta(seconds=settings.SCORING_STALE_GRACE_SECONDS)


def _claim(run_id: int) -> ScoreRun | None:
    """Mark ``run_id`` running if it is queued and no other run of its attempt is running
    (and none queued before it). None when there is nothing for this caller to do."""
    with transaction.atomic():
        run = ScoreRun.objects.filter(pk=run_id).select_related("attempt").first()
        if run is None or run.status != ScoreRun.Status.QUEUED:
            return None
        attempt = Attempt.objects.select_for_update().select_related("environment").get(pk=run.attempt_id)
        run = ScoreRun.objects.select_for_update().get(pk=run_id)
        if run.status != ScoreRun.Status.QUEUED:
            return None
        now = clock.now()
        timeout = timedelta(seconds=attempt.environment.scoring_timeout_seconds)
        for other in ScoreRun.objects.filter(attempt=attempt, status=ScoreRun.Status.RUNNING):
            if other.started_at and now - other.started_at > timeout + _stale_grace():
                _finish(other, Outcome(None, ScoreEntry.Status.ERROR, INTERRUPTED, {"interrupted": True}))
            else:
                return None
        first = ScoreRun.objects.filter(attempt=attempt, status=ScoreRun.Status.QUEUED).order_by("requested_at", "pk").first()
        if first.pk != run.pk:
            return None
        run.status, run.started_at = ScoreRun.Status.RUNNING, now
        run.save(update_fields=["status", "started_at"])
        attempt_event(attempt.pk, "scoring", {"run": run.pk, "status": run.status, "ahead": 0, "message": "Scoring…"})
    return run


def _finish(run: ScoreRun, outcome: Outcome) -> ScoreEntry:
    entry = score_record(attempt=run.attempt, outcome=outcome, trigger=run.trigger, triggered_by=run.triggered_by,
                         requested_at=run.requested_at, elapsed_seconds=run.elapsed_seconds)
    run.status, run.finished_at, run.entry = ScoreRun.Status.DONE, clock.now(), entry
    run.save(update_fields=["status", "finished_at", "entry"])
    return entry


def score_run_process(*, run_id: int) -> ScoreEntry | None:
    """Execute one queued run (the Celery task's body). Safe to call twice: a run that is not
    queued, or whose attempt already has a run in progress, is left alone; when a run ends the
    next queued run of its attempt is started."""
    from baseliner.machines.services import lease_for_attempt

    from .runner import machine_log_append, scorer_execute

    run = _claim(run_id)
    if run is None:
        return None
    attempt = run.attempt
    lease = None
    started = time.monotonic()
    try:
        lease = lease_for_attempt(attempt=attempt)
        if lease is None:
            outcome = Outcome(None, ScoreEntry.Status.ERROR, "Your machine is not available, so scoring could not run. Try again in a minute.")
        else:
            outcome = scorer_execute(attempt=attempt, lease=lease, environment=attempt.environment)
    except Exception as exc:  # the attempt must go on whatever broke: record it and move on
        log.exception("scoring run %s failed", run.pk)
        outcome = Outcome(None, ScoreEntry.Status.ERROR, "Scoring failed because of a problem on our side; try again. Staff have the details.",
                          {"exception": f"{type(exc).__name__}: {exc}"[:2000]})
    entry = _finish(run, outcome)
    _return_scoring_time(run, entry, measured=time.monotonic() - started)
    if lease is not None:
        try:
            machine_log_append(lease=lease, entry=entry)
        except Exception:  # the database is the authoritative log; the machine's copy is a convenience
            log.warning("could not append entry %s to the machine's score log", entry.pk, exc_info=True)
    nxt = ScoreRun.objects.filter(attempt=attempt, status=ScoreRun.Status.QUEUED).order_by("requested_at", "pk").first()
    if nxt is not None:
        _enqueue(nxt.pk)
    return entry


def _return_scoring_time(run: ScoreRun, entry: ScoreEntry, *, measured: float) -> None:
    """Where scoring does not count against the clock, give the run's time back (the scorer's
    own measured time; the whole run's when the scorer never ran). Never breaks scoring."""
    from baseliner.attempts.lifecycle import attempt_return_scoring_time

    seconds = entry.scoring_seconds if entry.scoring_seconds is not None else measured
    try:
        attempt_return_scoring_time(attempt=run.attempt, seconds=seconds, trigger=run.trigger, sequence=entry.sequence)
    except Exception:
        log.exception("could not give scoring run %s's time back to attempt %s", run.pk, run.attempt_id)


INTERRUPTED = "This scoring run was interrupted (the worker stopped); score again."


def score_runs_sweep(*, at=None) -> dict:
    """What a dead worker leaves behind (beat runs this every minute). The Celery message of a
    run is acknowledged when a worker takes it, so a worker killed mid-run loses it: without
    this sweep the run would stay "running" for ever, and every later run of its attempt would
    wait behind it.

    - a run ``running`` longer than its scorer's timeout plus ``SCORING_STALE_GRACE_SECONDS``
      is finished as an error entry (recorded, never silently dropped; the scorer is not
      started again, so nothing runs twice);
    - the first queued run of an attempt with nothing running is handed to a worker again
      (``_claim`` makes a duplicate delivery harmless).
    """
    at = at or clock.now()
    interrupted = []
    for run in ScoreRun.objects.filter(status=ScoreRun.Status.RUNNING).select_related("attempt__environment"):
        limit = timedelta(seconds=run.attempt.environment.scoring_timeout_seconds) + _stale_grace()
        if run.started_at is None or at - run.started_at <= limit:
            continue
        with transaction.atomic():
            Attempt.objects.select_for_update().get(pk=run.attempt_id)
            run = ScoreRun.objects.select_for_update().select_related("attempt").get(pk=run.pk)
            if run.status != ScoreRun.Status.RUNNING:
                continue
            _finish(run, Outcome(None, ScoreEntry.Status.ERROR, INTERRUPTED, {"interrupted": True}))
        log.warning("scoring run %s of attempt %s was interrupted (its worker stopped); recorded as an error", run.pk, run.attempt_id)
        interrupted.append(run.pk)
    requeued = []
    busy = set(ScoreRun.objects.filter(status=ScoreRun.Status.RUNNING).values_list("attempt_id", flat=True))
    for run in ScoreRun.objects.filter(status=ScoreRun.Status.QUEUED).order_by("requested_at", "pk"):
        if run.attempt_id in busy:
            continue
        busy.add(run.attempt_id)
        _enqueue(run.pk)
        requeued.append(run.pk)
    return {"interrupted": interrupted, "requeued": requeued}


def score_log_for(*, attempt: Attempt, reviewer: bool) -> dict:
    """The score log as the panel and the ``score_log`` command show it."""
    env = attempt.environment
    show_raw = reviewer or env.score_visible_to_expert
    entries = list(ScoreEntry.objects.filter(attempt=attempt).order_by("sequence"))
    counting = score_counting_entry(attempt=attempt)
    pending = list(ScoreRun.objects.filter(attempt=attempt, status__in=[ScoreRun.Status.QUEUED, ScoreRun.Status.RUNNING]).values("pk", "status"))
    return {
        "aggregation": env.aggregation,
        "direction": env.direction,
        "show_raw": show_raw,
        "counting_sequence": counting.sequence if counting else None,
        "entries": [entry_public(e, show_raw=show_raw) | ({"details": e.details} if reviewer else {}) for e in entries],
        "pending": pending,
    }


# --- machine tokens ---------------------------------------------------------------------

def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def machine_token_issue(*, lease) -> str:
    """A new bearer token for ``lease``'s ``score`` command; earlier tokens of the same
    attempt stop working. Only the hash is stored."""
    import secrets

    from .models import MachineToken

    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        MachineToken.objects.filter(attempt_id=lease.attempt_id, revoked_at__isnull=True).update(revoked_at=clock.now())
        MachineToken.objects.create(attempt_id=lease.attempt_id, lease=lease, token_hash=_token_hash(token))
    return token


def machine_token_attempt(*, token: str) -> Attempt | None:
    """The attempt a live token belongs to: not revoked, and its lease not torn down."""
    from baseliner.machines.models import Lease

    from .models import MachineToken

    if not token:
        return None
    row = (MachineToken.objects.select_related("attempt__environment", "lease")
           .filter(token_hash=_token_hash(token), revoked_at__isnull=True).first())
    if row is None or row.lease.state not in (Lease.State.READY, Lease.State.UNHEALTHY, Lease.State.PROVISIONING):
        return None
    return row.attempt
