"""
The attempt's life once its clock runs: pause, resume, extend, end, warnings, and the
enforcement of the deadline.

The deadline is enforced in three layers, so it holds whatever is down:

1. every HTTP request and WebSocket message of an attempt calls ``attempt_enforce_deadline``
   (``DeadlineMiddleware`` does it for every view that takes an ``attempt_id``);
2. ``attempts_sweep``, run by Celery beat every few seconds, ends overdue attempts, sends the
   minutes-left warnings, keeps machines' deadlines in sync and re-runs unfinished end steps;
3. the machine itself holds the deadline (``machine_guard``): a root guard locks the expert
   out at the deadline even when the app, workers and broker are all down.

All arithmetic is in ``clock``; state changes go through ``services.attempt_transition``.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse

from baseliner.audit.services import audit_record
from baseliner.catalog.models import PausePolicy
from baseliner.web.events import attempt_event

from . import clock, machine_guard
from .models import Attempt, ClockEvent
from .services import AttemptActionError, _locked, attempt_mark_ended, attempt_transition
from .states import FINISHED_STATES, EndReason, IllegalTransition, State

log = logging.getLogger(__name__)

MAX_EXTENSION_SECONDS = 24 * 3600
REASON_MAX_LENGTH = 2000


def _is_staff_actor(actor, attempt: Attempt) -> bool:
    return bool(actor is not None and actor.is_authenticated and actor.pk != attempt.expert_id and actor.is_staff)


def _actor(actor):
    return actor if (actor is not None and actor.is_authenticated) else None


def _clean_reason(reason: str, *, required: bool, what: str) -> str:
    reason = (reason or "").strip()
    if required and not reason:
        raise AttemptActionError(f"Please give a reason for {what}; it is kept in the audit log.")
    if len(reason) > REASON_MAX_LENGTH:
        raise AttemptActionError(f"The reason is too long ({len(reason)} characters; at most {REASON_MAX_LENGTH}).")
    return reason


# --- reading ------------------------------------------------------------------------------
def attempt_clock_status(*, attempt: Attempt, at: datetime | None = None) -> dict:
    """What a page needs to show the countdown: the server's deadline and its current time
    (the page computes ``deadline - (local now + (server_now - local now at fetch))``, so
    the expert's own clock, or a laptop that slept, never shifts it)."""
    at = at or clock.now()
    deadline = clock.deadline(attempt, at=at)
    return {
        "state": attempt.state,
        "label": attempt.get_state_display(),
        "server_now": at.isoformat(),
        "deadline": deadline.isoformat() if deadline and attempt.state == State.RUNNING else None,
        "time_left": clock.time_left(attempt, at=at),
        "time_used": clock.time_used(attempt, at=at),
        "time_limit": clock.total_allowed(attempt),
        "paused": attempt.state == State.PAUSED,
        "ended": attempt.state in FINISHED_STATES,
        "pause_allowed": attempt.environment.pause_policy == PausePolicy.ALLOWED,
        "warnings": list(clock.WARNING_MINUTES),
    }


def _push_clock(attempt: Attempt) -> None:
    attempt_event(attempt.pk, "clock", attempt_clock_status(attempt=attempt))


# --- the machine's copy of the deadline -------------------------------------------------------
def attempt_machine_sync(*, attempt_id: int) -> str:
    """Tell the attempt's machine its current deadline (or that it is paused or over) and
    record what it was told. Safe to call any number of times."""
    attempt = Attempt.objects.select_related("environment").get(pk=attempt_id)
    result = machine_guard.machine_sync_clock(attempt=attempt)
    if result != "no machine":
        Attempt.objects.filter(pk=attempt_id).update(machine_deadline_at=attempt.deadline_at)
    return result


def attempt_machine_sync_safely(*, attempt_id: int) -> str | None:
    """``attempt_machine_sync`` that never raises: the sweeper retries while the machine's
    deadline differs from the attempt's."""
    try:
        return attempt_machine_sync(attempt_id=attempt_id)
    except Exception:
        log.warning("could not set the deadline on attempt %s's machine; the sweeper will retry", attempt_id, exc_info=True)
        return None


def attempt_machine_catch_up(*, attempt_id: int) -> str | None:
    """Tell a running attempt's machine a deadline it missed (an extension made while it did
    not answer); audited when the machine held an older deadline. None when it was up to date.
    Called by the sweeper and when a lease answers again; raises if the machine still fails."""
    row = Attempt.objects.filter(pk=attempt_id).values("state", "deadline_at", "machine_deadline_at").first()
    if not row or row["state"] != State.RUNNING or row["deadline_at"] is None or row["deadline_at"] == row["machine_deadline_at"]:
        return None
    result = attempt_machine_sync(attempt_id=attempt_id)
    if result != "no machine" and row["machine_deadline_at"] is not None:
        audit_record(action="attempt.machine_deadline_synced", attempt=Attempt.objects.get(pk=attempt_id), data={
            "result": result, "old": row["machine_deadline_at"].isoformat(), "new": row["deadline_at"].isoformat()})
    return result


# --- pause and resume -------------------------------------------------------------------------
def attempt_pause(*, attempt: Attempt, actor, reason: str = "", at: datetime | None = None) -> Attempt:
    """Stop the clock where the environment allows pauses. The machine is frozen first
    (account locked, every process of the expert stopped): if that fails nothing changes,
    so a pause can never hide work."""
    reason = _clean_reason(reason, required=_is_staff_actor(actor, attempt), what="pausing")
    with transaction.atomic():
        attempt = _locked(attempt)
        if attempt.state == State.PAUSED:
            return attempt
        if attempt.state != State.RUNNING:
            raise AttemptActionError("Only a running attempt can be paused.")
        if attempt.environment.pause_policy != PausePolicy.ALLOWED:
            raise AttemptActionError("This environment does not allow pauses: the clock runs until the end.")
        if clock.is_overdue(attempt, at=at):
            raise AttemptActionError("The time is up; the attempt cannot be paused.")
        at = at or clock.now()
        lease, run = machine_guard._lease_and_run(attempt)
        if lease is not None:
            try:
                machine_guard.user_freeze(run, user=lease.username, machine_dir=lease.provider_state["machine_dir"])
            except Exception as exc:
                log.warning("attempt %s: freezing the machine failed: %s", attempt.pk, exc)
                raise AttemptActionError("The machine could not be paused, so the clock keeps running. Try again in a moment.") from exc
        attempt_transition(attempt=attempt, to=State.PAUSED, fields={"paused_at": at, "deadline_at": None})
        ClockEvent.objects.create(attempt=attempt, kind=ClockEvent.Kind.PAUSE, at=at, reason=reason, actor=_actor(actor))
        if _is_staff_actor(actor, attempt):
            audit_record(action="attempt.pause", actor=actor, attempt=attempt, reason=reason)
        attempt_event(attempt.pk, "paused", {"message": "The attempt is paused; its terminals open again when it resumes."})
        attempt_event(attempt.pk, "state", {"state": attempt.state, "label": attempt.get_state_display()})
        _push_clock(attempt)
    return attempt


def attempt_resume(*, attempt: Attempt, actor, reason: str = "", at: datetime | None = None) -> Attempt:
    """Start the clock again; the pause is not time used. The machine is thawed first."""
    reason = _clean_reason(reason, required=False, what="resuming")
    with transaction.atomic():
        attempt = _locked(attempt)
        if attempt.state == State.RUNNING:
            return attempt
        if attempt.state != State.PAUSED:
            raise AttemptActionError("Only a paused attempt can be resumed.")
        at = at or clock.now()
        paused = clock.pause_length(attempt, at=at)
        attempt.paused_seconds += paused
        attempt.paused_at = None
        deadline = clock.deadline(attempt, at=at)
        lease, run = machine_guard._lease_and_run(attempt)
        if lease is not None:
            try:
                machine_guard.user_thaw(run, user=lease.username, machine_dir=lease.provider_state["machine_dir"],
                                        deadline_epoch=clock.epoch(deadline))
            except Exception as exc:
                log.warning("attempt %s: thawing the machine failed: %s", attempt.pk, exc)
                raise AttemptActionError("The machine could not be resumed; the attempt stays paused. Try again in a moment.") from exc
        attempt_transition(attempt=attempt, to=State.RUNNING, fields={
            "paused_at": None, "paused_seconds": attempt.paused_seconds, "deadline_at": deadline,
            "machine_deadline_at": deadline if lease is not None else attempt.machine_deadline_at,
        })
        ClockEvent.objects.create(attempt=attempt, kind=ClockEvent.Kind.RESUME, at=at, seconds=paused, reason=reason, actor=_actor(actor))
        if _is_staff_actor(actor, attempt):
            audit_record(action="attempt.resume", actor=actor, attempt=attempt, reason=reason, data={"paused_seconds": paused})
        attempt_event(attempt.pk, "state", {"state": attempt.state, "label": attempt.get_state_display()})
        _push_clock(attempt)
    return attempt


# --- extension --------------------------------------------------------------------------------
def attempt_extend(*, attempt: Attempt, actor, seconds: float, reason: str, at: datetime | None = None) -> Attempt:
    """Staff give the attempt more time: the deadline moves by ``seconds``; audited.

    The machine's guard is told the new deadline in the same step when the machine answers.
    When it does not (an infrastructure failure, the very case where staff give time back),
    the extension still counts at once: the database's deadline is the clock (the app ends
    the attempt by it), and ``machine_deadline_at`` keeps the old value, so the sweeper and
    the lease's recovery (``lease_health_check``) tell the guard as soon as the machine answers.
    The audit record says whether the machine was told. Until then the guard holds the old
    deadline, which is only earlier: it can lock an unreachable machine early, never late."""
    if not _is_staff_actor(actor, attempt) and not (actor is not None and actor.is_superuser):
        raise AttemptActionError("Only staff can extend an attempt.")
    reason = _clean_reason(reason, required=True, what="the extension")
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        raise AttemptActionError("The extension must be a number of minutes.") from None
    if not (0 < seconds <= MAX_EXTENSION_SECONDS):
        raise AttemptActionError(f"An extension must be more than 0 and at most {MAX_EXTENSION_SECONDS // 3600} hours.")
    with transaction.atomic():
        attempt = _locked(attempt)
        if attempt.state not in (State.RUNNING, State.PAUSED):
            raise AttemptActionError("Only a running or paused attempt can be extended.")
        at = at or clock.now()
        old_deadline = clock.deadline(attempt, at=at)
        attempt.extension_seconds += seconds
        deadline = clock.deadline(attempt, at=at)
        fields = {"extension_seconds": attempt.extension_seconds, "warnings_sent": clock.warnings_after_change(attempt, at=at)}
        machine = "no machine"
        if attempt.state == State.RUNNING:
            fields["deadline_at"] = deadline
            lease, run = machine_guard._lease_and_run(attempt)
            if lease is not None and lease.state == "unhealthy":
                machine = "pending: the machine is not answering; it is told when it answers again"
            elif lease is not None:
                try:
                    machine_guard.guard_set_deadline(run, user=lease.username, machine_dir=lease.provider_state["machine_dir"],
                                                     deadline_epoch=clock.epoch(deadline))
                except Exception as exc:
                    log.warning("attempt %s: the machine could not be told the extended deadline: %s", attempt.pk, exc)
                    machine = f"pending: telling the machine failed ({str(exc)[:200]}); it is told when it answers again"
                else:
                    fields["machine_deadline_at"] = deadline
                    machine = "told"
        for name, value in fields.items():
            setattr(attempt, name, value)
        attempt.save(update_fields=list(fields))
        ClockEvent.objects.create(attempt=attempt, kind=ClockEvent.Kind.EXTEND, at=at, seconds=seconds, reason=reason, actor=_actor(actor))
        audit_record(action="attempt.extend", actor=actor, attempt=attempt, reason=reason, data={
            "seconds": seconds, "old_deadline": old_deadline.isoformat() if old_deadline else None,
            "new_deadline": deadline.isoformat() if deadline else None, "machine": machine,
        })
        minutes = round(seconds / 60)
        attempt_event(attempt.pk, "warning", {"kind": "extension", "message": f"Staff extended your time by {minutes} minute{'s' if minutes != 1 else ''}."})
        _push_clock(attempt)
    return attempt


# --- scoring time that does not count ------------------------------------------------------
def attempt_return_scoring_time(*, attempt: Attempt, seconds: float | None, trigger: str, sequence: int | None = None,
                                at: datetime | None = None) -> float:
    """Give a finished scoring run's time back to the clock where the environment says
    scoring does not count against it (``scoring.counts_against_clock: false``). Returns the
    seconds given back (0 when none: the setting is true, the final scoring, the attempt is
    not running or paused any more, or its time had already run out when the run finished).

    As after an extension, the deadline moves at once and the machine's guard is told; if the
    machine cannot be told now (or is unhealthy), the change is kept and the sweeper or the
    lease's recovery tells it (``machine_deadline_at`` stays different from ``deadline_at``
    until then; the guard's older deadline is only earlier). Recorded as a clock event
    ("scoring"), so the review timeline and the export show it."""
    with transaction.atomic():
        attempt = _locked(attempt)
        env = attempt.environment
        give = clock.scoring_time_to_return(counts_against_clock=env.scoring_counts_against_clock, trigger=trigger,
                                            seconds=seconds, scoring_timeout=env.scoring_timeout_seconds)
        if not give or attempt.state not in (State.RUNNING, State.PAUSED):
            return 0.0
        at = at or clock.now()
        if clock.is_overdue(attempt, at=at):
            # The time ran out while the scorer ran: the attempt ends as at any deadline (the
            # machine's guard may already have locked the expert out).
            return 0.0
        attempt.scoring_returned_seconds += give
        fields = {"scoring_returned_seconds": attempt.scoring_returned_seconds,
                  "warnings_sent": clock.warnings_after_change(attempt, at=at)}
        if attempt.state == State.RUNNING:
            deadline = clock.deadline(attempt, at=at)
            fields["deadline_at"] = deadline
            lease, run = machine_guard._lease_and_run(attempt)
            # An unhealthy machine is told when it answers again (as after an extension).
            if lease is not None and lease.state != "unhealthy":
                try:
                    machine_guard.guard_set_deadline(run, user=lease.username, machine_dir=lease.provider_state["machine_dir"],
                                                     deadline_epoch=clock.epoch(deadline))
                    fields["machine_deadline_at"] = deadline
                except Exception:
                    log.warning("attempt %s: could not tell the machine the deadline after scoring; the sweeper will",
                                attempt.pk, exc_info=True)
        for name, value in fields.items():
            setattr(attempt, name, value)
        attempt.save(update_fields=list(fields))
        which = f"Scoring run #{sequence}" if sequence else "A scoring run"
        ClockEvent.objects.create(attempt=attempt, kind=ClockEvent.Kind.SCORING, at=at, seconds=give,
                                  reason=f"{which} took {give:.1f} s; scoring does not count against the clock in this environment.")
        _push_clock(attempt)
    return give


# --- the end ----------------------------------------------------------------------------------
def attempt_end(*, attempt: Attempt, reason: str, actor=None, detail: str = "", at: datetime | None = None) -> Attempt:
    """End the attempt now (the expert's button, staff, or time running out) and start the
    end steps (``ending.py``). Idempotent. A timeout re-checks the clock under the row lock,
    so a sweep racing an extension never ends an attempt that has time left."""
    if reason == EndReason.STAFF:
        detail = _clean_reason(detail, required=True, what="ending the attempt")
    with transaction.atomic():
        locked = _locked(attempt)
        if locked.state in FINISHED_STATES:
            return locked
        if reason == EndReason.TIMEOUT and not clock.is_overdue(locked, at=at):
            return locked
        if reason == EndReason.EXPERT and locked.state not in (State.RUNNING, State.PAUSED):
            raise AttemptActionError("Only a started attempt can be ended.")
        try:
            attempt = attempt_mark_ended(attempt=locked, reason=reason, actor=actor, detail=detail, at=at)
        except IllegalTransition as exc:
            raise AttemptActionError(f"{exc} Cancel the machine request instead.") from exc
        from .ending import end_steps_initial

        attempt.end_steps = end_steps_initial()
        attempt.end_steps_finished_at = None
        attempt.deadline_at = None
        attempt.save(update_fields=["end_steps", "end_steps_finished_at", "deadline_at"])
        attempt_event(attempt.pk, "ended", ended_payload(attempt))
        attempt_event(attempt.pk, "state", {"state": attempt.state, "label": attempt.get_state_display()})
        _enqueue_end_steps(attempt.pk)
    log.info("attempt %s ended (%s)", attempt.pk, reason)
    return attempt


def ended_payload(attempt: Attempt) -> dict:
    label = EndReason(attempt.end_reason).label if attempt.end_reason else "Ended"
    return {
        "reason": attempt.end_reason,
        "label": label,
        "message": f"The attempt has ended ({label.lower()}). Your terminals are closed and your files are being archived.",
        "survey_url": reverse("attempt-survey", args=[attempt.pk]),
    }


def _enqueue_end_steps(attempt_id: int) -> None:
    from .tasks import attempt_end_steps_task

    def send():
        try:
            attempt_end_steps_task.delay(attempt_id)
            cache.set(_queued_key(attempt_id), "1", timeout=QUEUED_TTL)
        except Exception:  # broker down: the sweeper enqueues them when it is back
            log.warning("could not enqueue the end steps of attempt %s; the sweeper will", attempt_id, exc_info=True)

    transaction.on_commit(send)


# The sweeper enqueues an attempt's end steps at most once per QUEUED_TTL seconds.
QUEUED_TTL = 60


def _queued_key(attempt_id: int) -> str:
    return f"baseliner:end-steps-queued:{attempt_id}"


def attempt_enforce_deadline(*, attempt: Attempt, at: datetime | None = None) -> bool:
    """Layer 1 of enforcement: end ``attempt`` if its time is up. Returns whether the
    attempt may go on (it is running and has time left). Call it on every request and
    WebSocket message that acts on an attempt."""
    if attempt.state == State.RUNNING and clock.is_overdue(attempt, at=at):
        attempt_end(attempt=attempt, reason=EndReason.TIMEOUT, at=at)
        return False
    return attempt.state == State.RUNNING


def attempt_enforce_deadline_by_id(*, attempt_id: int, at: datetime | None = None) -> bool:
    """The same by id, with one cheap query (for middleware and consumers)."""
    at = at or clock.now()
    overdue = Attempt.objects.filter(pk=attempt_id, state=State.RUNNING, deadline_at__lte=at).select_related("environment").first()
    if overdue is not None:
        return attempt_enforce_deadline(attempt=overdue, at=at)
    return Attempt.objects.filter(pk=attempt_id, state=State.RUNNING).exists()


async def attempt_enforce_deadline_async(*, attempt_id: int) -> bool:
    """For WebSocket consumers: call on every message of an attempt (one indexed query)."""
    from channels.db import database_sync_to_async

    return await database_sync_to_async(attempt_enforce_deadline_by_id)(attempt_id=attempt_id)


# --- warnings ---------------------------------------------------------------------------------
def attempt_warn(*, attempt: Attempt, at: datetime | None = None) -> int | None:
    """Send the minutes-left warning that is due, if any: to the page, and printed in every
    terminal the expert has open. Returns the minutes warned about."""
    with transaction.atomic():
        attempt = _locked(attempt)
        if attempt.state != State.RUNNING:
            return None
        at = at or clock.now()
        minutes = clock.warning_due(attempt, at=at)
        if minutes is None:
            return None
        attempt.warnings_sent = clock.mark_warnings_sent(attempt, minutes)
        attempt.save(update_fields=["warnings_sent"])
        ClockEvent.objects.create(attempt=attempt, kind=ClockEvent.Kind.WARNING, at=at, seconds=minutes)
        left = clock.time_left(attempt, at=at)
        text = f"{minutes} minutes left" if left > (minutes - 1) * 60 else f"{max(1, round(left / 60))} minutes left"
        message = f"{text} in this attempt. Make sure your solution is saved where the scorer finds it."
        attempt_event(attempt.pk, "warning", {"minutes": minutes, "message": message, "label": text})
        attempt_id = attempt.pk
    machine_guard.machine_message(attempt=Attempt.objects.get(pk=attempt_id), text=message)
    return minutes


# --- the sweeper --------------------------------------------------------------------------------
SWEEP_WARNING_HORIZON = timedelta(minutes=max(clock.WARNING_MINUTES) + 1)


def attempts_sweep(*, at: datetime | None = None) -> dict:
    """Layer 2 of enforcement, run by Celery beat: end overdue attempts, send due warnings,
    re-tell machines whose deadline is out of date, and (re)start unfinished end steps.
    Each part is independent: one failing attempt does not stop the others."""
    at = at or clock.now()
    done = {"ended": [], "warned": [], "synced": [], "end_steps": []}
    running = Attempt.objects.filter(state=State.RUNNING).select_related("environment")
    for attempt in running.filter(Q(deadline_at__lte=at) | Q(deadline_at__isnull=True)):
        try:
            if clock.is_overdue(attempt, at=at):
                attempt_end(attempt=attempt, reason=EndReason.TIMEOUT, at=at)
                done["ended"].append(attempt.pk)
        except Exception:
            log.exception("sweeper: ending attempt %s failed", attempt.pk)
    for attempt in running.filter(deadline_at__gt=at, deadline_at__lte=at + SWEEP_WARNING_HORIZON):
        try:
            if attempt_warn(attempt=attempt, at=at):
                done["warned"].append(attempt.pk)
        except Exception:
            log.exception("sweeper: warning attempt %s failed", attempt.pk)
    stale = running.filter(deadline_at__gt=at).filter(Q(machine_deadline_at__isnull=True) | ~Q(machine_deadline_at=F("deadline_at")))
    for attempt in stale:
        try:
            if attempt_machine_catch_up(attempt_id=attempt.pk) not in (None, "no machine"):
                done["synced"].append(attempt.pk)
        except Exception as exc:
            log.warning("sweeper: the deadline of attempt %s's machine is out of date: %s", attempt.pk, exc)
    unfinished = Attempt.objects.filter(state__in=FINISHED_STATES, ended_at__isnull=False, end_steps_finished_at__isnull=True)
    for attempt_id in unfinished.values_list("pk", flat=True):
        if cache.add(_queued_key(attempt_id), "1", timeout=QUEUED_TTL):
            from .tasks import attempt_end_steps_task

            attempt_end_steps_task.delay(attempt_id)
            done["end_steps"].append(attempt_id)
    return done
