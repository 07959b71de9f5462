"""
Writes on assignments and attempts. Views, consumers, admin actions and Celery tasks call
these; nothing else changes an attempt's state or clock fields.
"""
from datetime import datetime

from django.db import transaction

from baseliner.audit.services import audit_record
from baseliner.catalog.models import Environment

from . import clock
from .models import Assignment, Attempt, ClockEvent
from .states import EndReason, IllegalTransition, State, check_transition


class AttemptActionError(Exception):
    """An action the attempt's current state or policy refuses; ``str()`` is shown to the user."""


def _locked(attempt: Attempt) -> Attempt:
    """Re-read the attempt under a row lock so concurrent actions serialize."""
    return Attempt.objects.select_for_update().select_related("environment").get(pk=attempt.pk)


def assignment_create(*, expert, environment: Environment, cohort=None, created_by=None) -> Assignment:
    """Assign ``expert`` to ``environment``; creates the attempt they will start."""
    with transaction.atomic():
        assignment = Assignment.objects.create(expert=expert, environment=environment, cohort=cohort, created_by=created_by)
        Attempt.objects.create(
            assignment=assignment,
            expert=expert,
            environment=environment,
            time_limit_seconds=environment.time_limit_seconds,
        )
        audit_record(action="assignment.create", actor=created_by, target=f"assignment:{assignment.pk}",
                     data={"expert": expert.pk, "environment": str(environment)})
    return assignment


def attempt_transition(*, attempt: Attempt, to: str, fields: dict | None = None) -> Attempt:
    """Move ``attempt`` to state ``to`` (raising IllegalTransition if the state machine
    forbids it) and write ``fields`` in the same update. The caller holds the row lock."""
    check_transition(attempt.state, to)
    attempt.state = to
    update = ["state"]
    for name, value in (fields or {}).items():
        setattr(attempt, name, value)
        update.append(name)
    attempt.save(update_fields=update)
    return attempt


def attempt_accept_rules(*, attempt: Attempt, at: datetime | None = None) -> Attempt:
    with transaction.atomic():
        attempt = _locked(attempt)
        if attempt.state != State.ASSIGNED and attempt.rules_accepted_at is None:
            raise AttemptActionError("The rules can only be accepted before the attempt starts.")
        if attempt.rules_accepted_at is None:
            attempt.rules_accepted_at = at or clock.now()
            attempt.save(update_fields=["rules_accepted_at"])
    return attempt


def attempt_clock_start(*, attempt: Attempt, at: datetime | None = None) -> Attempt:
    """The machine is ready: the clock starts now. Only from provisioning."""
    with transaction.atomic():
        attempt = _locked(attempt)
        at = at or clock.now()
        attempt_transition(attempt=attempt, to=State.RUNNING, fields={"started_at": at, "last_error": ""})
        attempt.deadline_at = clock.deadline(attempt, at=at)
        attempt.save(update_fields=["deadline_at"])
        ClockEvent.objects.create(attempt=attempt, kind=ClockEvent.Kind.START, at=at)
        # Layer 3 of enforcement: the machine's own guard learns the deadline before the start
        # is visible to anyone, so no crash after this commit can leave the machine unguarded.
        from .lifecycle import attempt_machine_sync_safely

        attempt_machine_sync_safely(attempt_id=attempt.pk)
    return attempt


def attempt_mark_ended(*, attempt: Attempt, reason: str, actor=None, detail: str = "", at: datetime | None = None) -> Attempt:
    """Stop the clock and move to ``ended``. Idempotent: ending an ended attempt is a no-op.
    The end-of-attempt steps (archive, final scoring, teardown) are run by the caller's task."""
    with transaction.atomic():
        attempt = _locked(attempt)
        if attempt.state in (State.ENDED, State.SURVEYED):
            return attempt
        at = at or clock.now()
        if attempt.started_at is not None:
            # Time running out ends the attempt at its deadline, not at the sweeper's tick.
            at = min(at, clock.deadline(attempt, at=at)) if reason == EndReason.TIMEOUT else at
        fields = {"end_reason": reason, "end_detail": detail, "ended_at": at}
        if attempt.paused_at is not None:
            fields["paused_seconds"] = attempt.paused_seconds + (at - attempt.paused_at).total_seconds()
            fields["paused_at"] = None
        attempt_transition(attempt=attempt, to=State.ENDED, fields=fields)
        ClockEvent.objects.create(attempt=attempt, kind=ClockEvent.Kind.END, at=at, reason=f"{reason}: {detail}".strip(": "), actor=actor if actor and actor.is_authenticated else None)
        if actor is not None and actor.is_authenticated and actor.pk != attempt.expert_id:
            audit_record(action="attempt.end", actor=actor, attempt=attempt, reason=detail, data={"reason": reason})
    return attempt


__all__ = [
    "AttemptActionError",
    "IllegalTransition",
    "assignment_create",
    "attempt_accept_rules",
    "attempt_clock_start",
    "attempt_mark_ended",
    "attempt_transition",
]
