"""The attempt state machine: legal moves work, illegal ones are refused with a clear error."""
from datetime import timedelta

import pytest

from baseliner.attempts import clock
from baseliner.attempts.models import ClockEvent
from baseliner.attempts.services import attempt_clock_start, attempt_mark_ended, attempt_transition
from baseliner.attempts.states import TRANSITIONS, EndReason, IllegalTransition, State
from tests import factories

pytestmark = pytest.mark.django_db


def test_new_assignment_creates_an_assigned_attempt_with_the_environment_time_limit():
    attempt = factories.attempt(time_limit_seconds=3600)
    assert attempt.state == State.ASSIGNED
    assert attempt.time_limit_seconds == 3600
    assert attempt.started_at is None


def test_full_happy_path_through_every_state():
    attempt = factories.attempt()
    attempt_transition(attempt=attempt, to=State.QUEUED)
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    attempt = attempt_clock_start(attempt=attempt)
    assert attempt.state == State.RUNNING
    attempt_transition(attempt=attempt, to=State.PAUSED)
    attempt_transition(attempt=attempt, to=State.RUNNING)
    attempt = attempt_mark_ended(attempt=attempt, reason=EndReason.EXPERT)
    attempt_transition(attempt=attempt, to=State.SURVEYED)
    attempt.refresh_from_db()
    assert attempt.state == State.SURVEYED


def test_illegal_transition_is_refused_with_a_message_naming_both_states():
    attempt = factories.attempt()
    with pytest.raises(IllegalTransition) as exc:
        attempt_transition(attempt=attempt, to=State.RUNNING)
    assert str(exc.value).startswith("An attempt that is assigned cannot become running")
    assert "provisioning" in str(exc.value)
    attempt.refresh_from_db()
    assert attempt.state == State.ASSIGNED


@pytest.mark.parametrize("current", list(State))
def test_every_state_refuses_every_move_not_in_the_table(current):
    attempt = factories.attempt()
    attempt.state = current
    for target in State:
        if target in TRANSITIONS[current]:
            continue
        with pytest.raises(IllegalTransition):
            attempt_transition(attempt=attempt, to=target)
        attempt.state = current


def test_a_surveyed_attempt_is_final():
    assert TRANSITIONS[State.SURVEYED] == frozenset()


def test_clock_start_only_from_provisioning():
    attempt = factories.attempt()
    with pytest.raises(IllegalTransition):
        attempt_clock_start(attempt=attempt)
    attempt.refresh_from_db()
    assert attempt.started_at is None


def test_clock_start_sets_deadline_and_logs_a_start_event():
    attempt = factories.attempt(time_limit_seconds=8 * 3600)
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    at = clock.now()
    attempt = attempt_clock_start(attempt=attempt, at=at)
    assert attempt.deadline_at == at + timedelta(hours=8)
    assert list(attempt.clock_events.values_list("kind", flat=True)) == [ClockEvent.Kind.START]


def test_ending_twice_is_a_no_op_and_keeps_the_first_reason():
    attempt = factories.attempt()
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    attempt_clock_start(attempt=attempt)
    attempt_mark_ended(attempt=attempt, reason=EndReason.EXPERT)
    attempt_mark_ended(attempt=attempt, reason=EndReason.TIMEOUT)
    attempt.refresh_from_db()
    assert attempt.end_reason == EndReason.EXPERT
    assert attempt.clock_events.filter(kind=ClockEvent.Kind.END).count() == 1


def test_timeout_ends_at_the_deadline_not_when_the_sweeper_noticed():
    attempt = factories.attempt(time_limit_seconds=60)
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    start = clock.now() - timedelta(seconds=90)
    attempt_clock_start(attempt=attempt, at=start)
    attempt = attempt_mark_ended(attempt=attempt, reason=EndReason.TIMEOUT)
    assert attempt.ended_at == start + timedelta(seconds=60)
    assert clock.time_used(attempt) == 60
