"""What the attempt page says around the clock, the rules and the survey, as an expert reads it."""
import re

import pytest

from baseliner.attempts.lifecycle import attempt_end, attempt_pause
from baseliner.attempts.services import attempt_clock_start, attempt_transition
from baseliner.attempts.states import EndReason, State
from tests import factories

pytestmark = pytest.mark.django_db


def page_of(client, attempt) -> str:
    client.force_login(attempt.expert)
    return client.get(f"/attempts/{attempt.pk}/").content.decode()


def test_before_the_start_the_time_limit_reads_as_hours_and_no_empty_clock_is_shown(client):
    attempt = factories.attempt(time_limit_seconds=8 * 3600)
    html = page_of(client, attempt)
    assert "Time limit: 8:00:00" in html and "28800 s" not in html
    assert re.search(r'<section class="clock-panel"[^>]*\bhidden>', html), "an empty clock card before the start"


def test_the_rules_checkbox_mentions_rules_only_where_there_are_some(client):
    html = page_of(client, factories.attempt())
    assert "I have read the instructions, and I accept them" in html and "the rules" not in html
    html = page_of(client, factories.attempt(rules="No internet search for the answer."))
    assert "I have read the instructions and the rules, and I accept them" in html
    assert "No internet search for the answer." in html


def test_a_deadline_is_shown_only_while_the_clock_runs(client):
    attempt = factories.attempt(pause_policy="allowed")
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    attempt = attempt_clock_start(attempt=attempt)
    client.force_login(attempt.expert)
    assert "Deadline:" not in client.get(f"/attempts/{attempt.pk}/").content.decode()  # the workspace shows the countdown
    attempt = attempt_pause(attempt=attempt, actor=attempt.expert)
    html = client.get(f"/attempts/{attempt.pk}/").content.decode()
    assert "Paused" in html and "Deadline:" not in html  # a pause moves it: no stale date
    attempt_end(attempt=attempt, reason=EndReason.EXPERT, actor=attempt.expert)
    client.force_login(factories.user(superuser=True))  # the expert is sent on to the survey
    html = client.get(f"/attempts/{attempt.pk}/").content.decode()
    assert "Time used" in html and "Deadline:" not in html


def test_each_survey_text_field_is_named_by_its_question(client):
    attempt = factories.attempt()
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    attempt = attempt_clock_start(attempt=attempt)
    attempt_end(attempt=attempt, reason=EndReason.EXPERT, actor=attempt.expert)
    client.force_login(attempt.expert)
    html = client.get(f"/attempts/{attempt.pk}/survey/").content.decode()
    labels = re.findall(r'<label for="in-(\w+)" class="visually-hidden">([^<]*)</label>', html)
    assert labels and all(text not in ("", "Answer") for _, text in labels), labels
    assert ("score_matched_why", "Why, or why not?") in labels


def test_a_finished_attempts_machine_card_says_the_machine_is_done_with(client):
    attempt = factories.attempt()
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    attempt = attempt_clock_start(attempt=attempt)
    attempt_end(attempt=attempt, reason=EndReason.EXPERT, actor=attempt.expert)
    client.force_login(factories.user(superuser=True))
    html = client.get(f"/attempts/{attempt.pk}/").content.decode()
    card = html[html.index('id="machine-panel"'):]
    card = card[:card.index("</section>")]
    assert "The attempt has ended: its terminals are closed and its machine is no longer in use." in card
