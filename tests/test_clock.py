"""Clock arithmetic: both sides of every boundary, pauses and extensions."""
from datetime import timedelta
from types import SimpleNamespace

from django.utils import timezone

from baseliner.attempts import clock

T0 = timezone.now().replace(microsecond=0)


def attempt(**kw):
    fields = dict(started_at=T0, time_limit_seconds=100, extension_seconds=0.0, paused_seconds=0.0, paused_at=None, ended_at=None,
                  scoring_returned_seconds=0.0)
    fields.update(kw)
    return SimpleNamespace(**fields)


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


def test_not_started_has_full_time_and_no_deadline():
    a = attempt(started_at=None)
    assert clock.deadline(a) is None
    assert clock.time_used(a) == 0
    assert clock.time_left(a) == 100
    assert clock.is_overdue(a) is False


def test_time_runs_on_the_wall_clock():
    a = attempt()
    assert clock.time_used(a, at=at(30)) == 30
    assert clock.time_left(a, at=at(30)) == 70
    assert clock.deadline(a, at=at(30)) == at(100)


def test_overdue_exactly_at_the_deadline_not_a_second_before():
    a = attempt()
    assert clock.is_overdue(a, at=at(99)) is False
    assert clock.is_overdue(a, at=at(100)) is True


def test_time_left_never_negative_and_used_never_exceeds_the_limit():
    a = attempt()
    assert clock.time_left(a, at=at(500)) == 0
    assert clock.time_used(a, at=at(500)) == 100


def test_finished_pauses_move_the_deadline_and_are_not_time_used():
    a = attempt(paused_seconds=20)
    assert clock.deadline(a, at=at(50)) == at(120)
    assert clock.time_used(a, at=at(50)) == 30


def test_a_pause_in_progress_stops_the_clock_and_is_never_overdue():
    a = attempt(paused_at=at(40))
    assert clock.time_used(a, at=at(1000)) == 40
    assert clock.deadline(a, at=at(1000)) == at(1060)
    assert clock.is_overdue(a, at=at(1000)) is False


def test_extension_adds_to_the_limit():
    a = attempt(extension_seconds=30)
    assert clock.deadline(a, at=at(0)) == at(130)
    assert clock.time_left(a, at=at(100)) == 30
    assert clock.is_overdue(a, at=at(129)) is False
    assert clock.is_overdue(a, at=at(130)) is True


def test_scoring_time_given_back_moves_the_deadline_and_is_not_time_used():
    a = attempt(scoring_returned_seconds=12.5)
    assert clock.deadline(a, at=at(50)) == at(112.5)
    assert clock.time_used(a, at=at(50)) == 37.5
    assert clock.time_left(a, at=at(50)) == 62.5
    assert clock.total_allowed(a) == 100  # the limit is the same: unlike an extension
    assert clock.is_overdue(a, at=at(112)) is False
    assert clock.is_overdue(a, at=at(112.5)) is True


def test_which_scoring_runs_give_their_time_back():
    give = clock.scoring_time_to_return
    assert give(counts_against_clock=False, trigger="button", seconds=7.25, scoring_timeout=60) == 7.25
    assert give(counts_against_clock=False, trigger="command", seconds=3, scoring_timeout=60) == 3
    assert give(counts_against_clock=True, trigger="button", seconds=7.25, scoring_timeout=60) == 0
    assert give(counts_against_clock=False, trigger="final", seconds=7.25, scoring_timeout=60) == 0
    for bad in (None, float("nan"), float("inf"), -1, 0, "x"):
        assert give(counts_against_clock=False, trigger="button", seconds=bad, scoring_timeout=60) == 0
    assert give(counts_against_clock=False, trigger="button", seconds=10_000, scoring_timeout=60) == 120


def test_an_ended_attempt_stops_counting():
    a = attempt(ended_at=at(45))
    assert clock.time_used(a, at=at(90)) == 45
    assert clock.is_overdue(a, at=at(500)) is False


def test_now_is_timezone_aware():
    assert timezone.is_aware(clock.now())
