"""
The attempt's state machine, in one table.

    assigned -> queued -> provisioning -> running <-> paused -> ended -> surveyed
                   ^           |
                   +-- provision_failed (retry)

``ended`` carries a reason (expert, timeout, staff, infrastructure, withdrawn). Any move not
in TRANSITIONS raises IllegalTransition with a message that names both states.
"""
from django.db import models


class State(models.TextChoices):
    ASSIGNED = "assigned", "Assigned"
    QUEUED = "queued", "Waiting for a machine"
    PROVISIONING = "provisioning", "Preparing machine"
    PROVISION_FAILED = "provision_failed", "Machine preparation failed"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    ENDED = "ended", "Ended"
    SURVEYED = "surveyed", "Complete"


class EndReason(models.TextChoices):
    EXPERT = "expert", "Ended by the expert"
    TIMEOUT = "timeout", "Time ran out"
    STAFF = "staff", "Ended by staff"
    INFRASTRUCTURE = "infrastructure", "Ended after an infrastructure failure"
    WITHDRAWN = "withdrawn", "Withdrawn before it started"


TRANSITIONS: dict[str, frozenset[str]] = {
    State.ASSIGNED: frozenset({State.QUEUED, State.PROVISIONING, State.ENDED}),
    State.QUEUED: frozenset({State.PROVISIONING, State.ASSIGNED, State.ENDED}),
    State.PROVISIONING: frozenset({State.RUNNING, State.PROVISION_FAILED, State.QUEUED}),
    State.PROVISION_FAILED: frozenset({State.QUEUED, State.PROVISIONING, State.ENDED}),
    State.RUNNING: frozenset({State.PAUSED, State.ENDED}),
    State.PAUSED: frozenset({State.RUNNING, State.ENDED}),
    State.ENDED: frozenset({State.SURVEYED}),
    State.SURVEYED: frozenset(),
}

# States in which the clock has started and the attempt holds (or held) a machine.
LIVE_STATES = frozenset({State.RUNNING, State.PAUSED})
# States that have not yet started the clock.
NOT_STARTED_STATES = frozenset({State.ASSIGNED, State.QUEUED, State.PROVISIONING, State.PROVISION_FAILED})
FINISHED_STATES = frozenset({State.ENDED, State.SURVEYED})


class IllegalTransition(Exception):
    """A state change the state machine does not allow. ``str()`` is fit to show a user."""

    def __init__(self, current: str, target: str):
        self.current, self.target = current, target
        allowed = ", ".join(sorted(TRANSITIONS.get(current, ()))) or "none"
        super().__init__(
            f"An attempt that is {State(current).label.lower()} cannot become {State(target).label.lower()} "
            f"(from '{current}' the allowed next states are: {allowed})."
        )


def check_transition(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(current, target)
