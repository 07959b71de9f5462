"""Pause, resume, extension, staff end, deadline enforcement, warnings and the sweeper."""
from datetime import timedelta

import pytest

from baseliner.attempts import clock
from baseliner.attempts.lifecycle import (
    attempt_end,
    attempt_enforce_deadline,
    attempt_extend,
    attempt_pause,
    attempt_resume,
    attempt_warn,
    attempts_sweep,
)
from baseliner.attempts.models import ClockEvent
from baseliner.attempts.services import AttemptActionError, attempt_clock_start, attempt_transition
from baseliner.attempts.states import EndReason, State
from baseliner.audit.models import AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def now(monkeypatch):
    """Move the one clock seam: ``now.t`` is the current time; ``now.move(seconds)``."""
    class Now:
        t = clock.now().replace(microsecond=0)

        def move(self, seconds):
            self.t += timedelta(seconds=seconds)

    n = Now()
    monkeypatch.setattr(clock, "now", lambda: n.t)
    return n


def running(now, *, limit=3600, pause_policy="none", **kw):
    attempt = factories.attempt(time_limit_seconds=limit, pause_policy=pause_policy, **kw)
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    return attempt_clock_start(attempt=attempt, at=now.t)


def test_pause_is_refused_where_the_environment_does_not_allow_it(now):
    attempt = running(now)
    with pytest.raises(AttemptActionError, match="does not allow pauses"):
        attempt_pause(attempt=attempt, actor=attempt.expert)
    attempt.refresh_from_db()
    assert attempt.state == State.RUNNING


def test_a_pause_is_not_time_used_and_moves_the_deadline(now):
    attempt = running(now, limit=3600, pause_policy="allowed")
    now.move(600)
    attempt_pause(attempt=attempt, actor=attempt.expert, reason="lunch")
    now.move(1800)
    attempt.refresh_from_db()
    assert attempt.state == State.PAUSED
    assert clock.time_used(attempt) == 600
    assert clock.is_overdue(attempt, at=now.t + timedelta(hours=5)) is False
    attempt = attempt_resume(attempt=attempt, actor=attempt.expert)
    assert attempt.paused_seconds == 1800
    assert attempt.deadline_at == attempt.started_at + timedelta(seconds=3600 + 1800)
    now.move(100)
    assert clock.time_used(attempt) == 700
    kinds = list(attempt.clock_events.values_list("kind", "reason", "actor"))
    assert kinds[1:] == [(ClockEvent.Kind.PAUSE, "lunch", attempt.expert_id), (ClockEvent.Kind.RESUME, "", attempt.expert_id)]
    assert attempt.clock_events.get(kind=ClockEvent.Kind.RESUME).seconds == 1800


def test_staff_pause_needs_a_reason_and_is_audited(now):
    attempt = running(now, pause_policy="allowed")
    staff = factories.user(staff=True)
    with pytest.raises(AttemptActionError, match="Please give a reason"):
        attempt_pause(attempt=attempt, actor=staff, reason=" ")
    attempt_pause(attempt=attempt, actor=staff, reason="machine maintenance")
    assert AuditEvent.objects.filter(action="attempt.pause", attempt=attempt, actor=staff, reason="machine maintenance").exists()


def test_an_extension_moves_the_deadline_and_is_audited(now):
    attempt = running(now, limit=3600)
    staff = factories.user(staff=True)
    old = attempt.deadline_at
    attempt = attempt_extend(attempt=attempt, actor=staff, seconds=900, reason="scorer was down for 15 minutes")
    assert attempt.deadline_at == old + timedelta(seconds=900)
    assert clock.time_left(attempt) == 4500
    event = AuditEvent.objects.get(action="attempt.extend", attempt=attempt)
    assert event.actor == staff and event.reason == "scorer was down for 15 minutes"
    assert event.data["seconds"] == 900 and event.data["new_deadline"] == attempt.deadline_at.isoformat()
    assert attempt.clock_events.get(kind=ClockEvent.Kind.EXTEND).seconds == 900


def test_only_staff_extend_and_always_with_a_reason(now):
    attempt = running(now)
    with pytest.raises(AttemptActionError, match="Only staff"):
        attempt_extend(attempt=attempt, actor=attempt.expert, seconds=600, reason="I want more")
    staff = factories.user(staff=True)
    with pytest.raises(AttemptActionError, match="Please give a reason"):
        attempt_extend(attempt=attempt, actor=staff, seconds=600, reason="")
    with pytest.raises(AttemptActionError, match="more than 0"):
        attempt_extend(attempt=attempt, actor=staff, seconds=-60, reason="oops")
    attempt.refresh_from_db()
    assert attempt.extension_seconds == 0


def test_staff_end_needs_a_reason_and_is_audited(now):
    attempt = running(now)
    staff = factories.user(staff=True)
    with pytest.raises(AttemptActionError, match="Please give a reason"):
        attempt_end(attempt=attempt, reason=EndReason.STAFF, actor=staff, detail="")
    attempt = attempt_end(attempt=attempt, reason=EndReason.STAFF, actor=staff, detail="rule violation: used the internet")
    assert attempt.state == State.ENDED and attempt.end_reason == EndReason.STAFF
    assert AuditEvent.objects.filter(action="attempt.end", attempt=attempt, actor=staff).exists()
    assert set(attempt.end_steps) == {"close_terminals", "archive", "final_scoring", "final_result", "teardown"}


def test_enforcement_ends_an_overdue_attempt_at_its_deadline(now):
    attempt = running(now, limit=60)
    now.move(59)
    assert attempt_enforce_deadline(attempt=attempt) is True
    now.move(31)
    assert attempt_enforce_deadline(attempt=attempt) is False
    attempt.refresh_from_db()
    assert attempt.state == State.ENDED and attempt.end_reason == EndReason.TIMEOUT
    assert attempt.ended_at == attempt.started_at + timedelta(seconds=60)


def test_a_timeout_racing_an_extension_does_not_end_the_attempt(now):
    attempt = running(now, limit=60)
    stale = type(attempt).objects.get(pk=attempt.pk)
    attempt_extend(attempt=attempt, actor=factories.user(staff=True), seconds=600, reason="more time")
    now.move(90)
    attempt_end(attempt=stale, reason=EndReason.TIMEOUT)
    attempt.refresh_from_db()
    assert attempt.state == State.RUNNING


def test_any_request_to_an_overdue_attempt_ends_it(now, client):
    attempt = running(now, limit=60)
    client.force_login(attempt.expert)
    now.move(61)
    response = client.get(f"/attempts/{attempt.pk}/clock/")
    assert response.json()["state"] == "ended"
    attempt.refresh_from_db()
    assert attempt.end_reason == EndReason.TIMEOUT


def test_warnings_at_60_15_and_5_minutes_each_once(now):
    attempt = running(now, limit=2 * 3600)
    assert attempt_warn(attempt=attempt) is None
    now.move(3600)  # 60 minutes left
    assert attempt_warn(attempt=attempt) == 60
    assert attempt_warn(attempt=attempt) is None
    now.move(45 * 60)
    assert attempt_warn(attempt=attempt) == 15
    now.move(10 * 60)
    assert attempt_warn(attempt=attempt) == 5
    assert list(attempt.clock_events.filter(kind="warning").values_list("seconds", flat=True)) == [60, 15, 5]


def test_a_late_sweep_sends_only_the_smallest_due_warning_and_an_extension_rearms_them(now):
    attempt = running(now, limit=20 * 60)  # 20 minutes: the 60-minute warning never applies
    now.move(16 * 60)  # 4 minutes left
    assert attempt_warn(attempt=attempt) == 5
    assert attempt_warn(attempt=attempt) is None
    attempt_extend(attempt=attempt, actor=factories.user(staff=True), seconds=30 * 60, reason="outage")
    now.move(20 * 60)  # 14 minutes left
    assert attempt_warn(attempt=attempt) == 15


def test_the_sweeper_ends_overdue_attempts_and_leaves_others(now):
    late = running(now, limit=60)
    fine = running(now, limit=3600)
    now.move(75)
    done = attempts_sweep()
    assert done["ended"] == [late.pk]
    late.refresh_from_db()
    fine.refresh_from_db()
    assert (late.state, late.end_reason, fine.state) == (State.ENDED, EndReason.TIMEOUT, State.RUNNING)
    assert late.pk in done["end_steps"]


def test_staff_extend_and_end_from_the_admin_with_a_reason(now, client):
    attempt = running(now, limit=3600)
    staff = factories.user(staff=True)
    client.force_login(staff)
    url = f"/admin/attempts/attempt/{attempt.pk}/clock/"
    response = client.post(url, {"action": "extend", "minutes": "30", "reason": ""})
    assert "Please give a reason; it is kept in the audit log." in response.content.decode()
    response = client.post(url, {"action": "extend", "minutes": "30", "reason": "the GPU was lost for half an hour"})
    assert response.status_code == 302
    attempt.refresh_from_db()
    assert attempt.extension_seconds == 1800
    assert AuditEvent.objects.filter(action="attempt.extend", actor=staff, reason="the GPU was lost for half an hour").exists()
    response = client.post(url, {"action": "end", "reason": "expert asked to stop"})
    attempt.refresh_from_db()
    assert (attempt.state, attempt.end_reason, attempt.end_detail) == (State.ENDED, EndReason.STAFF, "expert asked to stop")


def test_the_expert_end_button_needs_confirmation_and_only_works_for_the_expert(now, client):
    attempt = running(now)
    client.force_login(factories.user(staff=True))
    assert client.post(f"/attempts/{attempt.pk}/end/", {"confirm": "yes"}).status_code == 404
    client.force_login(attempt.expert)
    client.post(f"/attempts/{attempt.pk}/end/", {})
    attempt.refresh_from_db()
    assert attempt.state == State.RUNNING
    response = client.post(f"/attempts/{attempt.pk}/end/", {"confirm": "yes"})
    assert response.url == f"/attempts/{attempt.pk}/survey/"
    attempt.refresh_from_db()
    assert (attempt.state, attempt.end_reason) == (State.ENDED, EndReason.EXPERT)


def test_a_score_request_after_the_deadline_is_refused_and_ends_the_attempt(now):
    from baseliner.scoring.models import ScoreEntry
    from baseliner.scoring.services import ScoringRefused, score_request

    attempt = running(now, limit=60)
    now.move(61)
    with pytest.raises(ScoringRefused, match="only possible while the attempt is running"):
        score_request(attempt=attempt, trigger=ScoreEntry.Trigger.COMMAND, user=attempt.expert)
    attempt.refresh_from_db()
    assert (attempt.state, attempt.end_reason) == (State.ENDED, EndReason.TIMEOUT)
