"""The end-of-attempt survey: versions, validation, drafts, and no way around it."""
from datetime import timedelta

import pytest

from baseliner.attempts import clock
from baseliner.attempts.ending import attempt_end_steps_run
from baseliner.attempts.lifecycle import attempt_end
from baseliner.attempts.services import attempt_clock_start, attempt_transition
from baseliner.attempts.states import EndReason, State
from baseliner.scoring.models import ScoreEntry
from baseliner.scoring.services import Outcome, score_record
from baseliner.surveys.models import Survey, SurveyResponse
from baseliner.surveys.services import SurveyError, SurveyInvalid, survey_active, survey_response_submit
from tests import factories

pytestmark = pytest.mark.django_db

GOOD = {
    "score_matched": "partly", "score_matched_why": "I expected a bit more", "difficulty": "4", "setup_minutes": "25",
    "prior_experience": "3", "more_time": "Tune the block size", "broken": "no", "broken_details": "",
}


def ended(**env):
    attempt = factories.attempt(**env)
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    attempt_clock_start(attempt=attempt, at=clock.now() - timedelta(minutes=5))
    return attempt_end(attempt=attempt, reason=EndReason.EXPERT, actor=attempt.expert)


def test_the_default_survey_asks_what_the_study_needs():
    survey = survey_active()
    ids = [q["id"] for q in survey.questions]
    assert ids[:1] == ["score_matched"]
    assert {"difficulty", "setup_minutes", "prior_experience", "more_time", "broken"} <= set(ids)
    assert next(q for q in survey.questions if q["id"] == "score_matched")["choices"] == ["yes", "partly", "no"]


def test_a_valid_survey_completes_the_attempt_and_is_stored_against_its_version():
    attempt = ended()
    response = survey_response_submit(attempt=attempt, user=attempt.expert, raw=GOOD)
    attempt.refresh_from_db()
    assert attempt.state == State.SURVEYED
    assert response.survey == survey_active() and response.submitted_at is not None
    assert response.answers["difficulty"] == 4 and response.answers["setup_minutes"] == 25
    assert "broken_details" not in response.answers


def test_the_survey_cannot_be_skipped_and_a_missing_required_answer_keeps_the_others(client):
    attempt = ended()
    client.force_login(attempt.expert)
    # The attempt page sends the expert to the survey until it is done.
    assert client.get(f"/attempts/{attempt.pk}/").url == f"/attempts/{attempt.pk}/survey/"
    answers = {**GOOD, "difficulty": ""}
    response = client.post(f"/attempts/{attempt.pk}/survey/", {**answers, "action": "submit"})
    html = response.content.decode()
    assert response.status_code == 200  # the form again, with the error (not a redirect)
    assert "This question needs an answer." in html
    assert "Tune the block size" in html and 'value="25"' in html and "I expected a bit more" in html
    attempt.refresh_from_db()
    assert attempt.state == State.ENDED
    # The answers were kept on the server as a draft too.
    assert SurveyResponse.objects.get(attempt=attempt).answers["draft"]["more_time"] == "Tune the block size"
    assert "Tune the block size" in client.get(f"/attempts/{attempt.pk}/survey/").content.decode()


def test_wrong_types_and_oversized_answers_get_clear_errors(settings):
    settings.SURVEY_ANSWER_MAX_CHARS = 50
    attempt = ended()
    with pytest.raises(SurveyInvalid) as exc:
        survey_response_submit(attempt=attempt, user=attempt.expert, raw={
            **GOOD, "setup_minutes": "half an hour", "difficulty": "9", "score_matched": "maybe", "more_time": "x" * 51,
        })
    assert exc.value.errors == {
        "score_matched": "Pick one of: yes, partly, no.",
        "difficulty": "Pick one of the 5 options.",
        "setup_minutes": "Enter a number (for example 30 or 2.5).",
        "more_time": "This answer is too long (51 characters; at most 50). Please shorten it.",
    }
    with pytest.raises(SurveyInvalid) as exc:
        survey_response_submit(attempt=attempt, user=attempt.expert, raw={**GOOD, "setup_minutes": "-5"})
    assert exc.value.errors == {"setup_minutes": "Enter a number of at least 0."}


def test_only_an_ended_attempt_of_ones_own_can_be_surveyed(client):
    attempt = factories.attempt()
    with pytest.raises(SurveyError, match="opens when the attempt has ended"):
        survey_response_submit(attempt=attempt, user=attempt.expert, raw=GOOD)
    done = ended()
    with pytest.raises(SurveyError, match="Only the expert"):
        survey_response_submit(attempt=done, user=factories.user(), raw=GOOD)
    client.force_login(factories.user())
    assert client.get(f"/attempts/{done.pk}/survey/").status_code == 404
    survey_response_submit(attempt=done, user=done.expert, raw=GOOD)
    with pytest.raises(SurveyError, match="already submitted"):
        survey_response_submit(attempt=done, user=done.expert, raw=GOOD)


def test_editing_a_survey_with_answers_in_the_admin_creates_a_new_version(client):
    attempt = ended()
    survey_response_submit(attempt=attempt, user=attempt.expert, raw=GOOD)
    v1 = survey_active()
    client.force_login(factories.user(superuser=True))
    questions = [*v1.questions, {"id": "fun", "type": "likert", "text": "Was it fun?", "choices": ["no", "yes"], "required": False}]
    import json

    response = client.post(f"/admin/surveys/survey/{v1.pk}/change/", {
        "name": "default", "title": v1.title, "questions": json.dumps(questions), "is_active": "on",
    })
    assert response.status_code == 302
    v1.refresh_from_db()
    v2 = survey_active()
    assert (v2.version, v1.version, v1.is_active) == (2, 1, False)
    assert [q["id"] for q in v1.questions][-1] == "broken_details"  # the answered version is unchanged
    assert v2.questions[-1]["id"] == "fun"
    assert SurveyResponse.objects.get(attempt=attempt).survey == v1
    # A broken definition is refused with the reason.
    response = client.post(f"/admin/surveys/survey/{v2.pk}/change/", {
        "name": "default", "title": "x", "questions": json.dumps([{"id": "a", "type": "stars", "text": "?"}]), "is_active": "on",
    })
    assert "has type &#x27;stars&#x27;" in response.content.decode() or "has type 'stars'" in response.content.decode()
    assert Survey.objects.filter(name="default").count() == 2


def test_home_lists_state_time_used_score_and_survey_status(client):
    shown = ended(score_visible_to_expert=True)
    shown.final_normalized_score = 0.42
    shown.save(update_fields=["final_normalized_score"])
    hidden = ended(expert=shown.expert, score_visible_to_expert=False)
    hidden.final_normalized_score = 0.99
    hidden.save(update_fields=["final_normalized_score"])
    survey_response_submit(attempt=hidden, user=hidden.expert, raw=GOOD)
    client.force_login(shown.expert)
    html = client.get("/").content.decode()
    assert "0.420" in html and "0.990" not in html
    assert "Due — answer it" in html and "Done" in html and "0:05:00" in html


def test_the_survey_shows_the_score_that_counts_where_experts_may_see_scores(client):
    # "Did your final score match your expectations?" is asked beside that score.
    shown = factories.attempt(score_visible_to_expert=True)
    attempt_transition(attempt=shown, to=State.PROVISIONING)
    attempt_clock_start(attempt=shown, at=clock.now() - timedelta(minutes=5))
    for raw in (2.0, 1.0, 3.0):  # a best-of environment, higher is better: #3 counts
        score_record(attempt=shown, outcome=Outcome(raw, ScoreEntry.Status.OK, "ok"), trigger="button")
    shown = attempt_end(attempt=shown, reason=EndReason.EXPERT, actor=shown.expert)
    client.force_login(shown.expert)
    # Right after the end the worker is still on the ending steps (the final scoring among them).
    assert "still being worked out" in client.get(f"/attempts/{shown.pk}/survey/").content.decode()
    attempt_end_steps_run(attempt_id=shown.pk)
    shown.refresh_from_db()
    assert shown.final_score.sequence == 3
    html = client.get(f"/attempts/{shown.pk}/survey/").content.decode()
    assert "Your score that counts" in html and f"{shown.final_normalized_score:.3f}" in html, html
    assert "from score #3" in html

    nothing = ended(expert=shown.expert, score_visible_to_expert=True)
    attempt_end_steps_run(attempt_id=nothing.pk)
    html = client.get(f"/attempts/{nothing.pk}/survey/").content.decode()
    assert "No score counts for this attempt" in html

    hidden = ended(expert=shown.expert, score_visible_to_expert=False)
    html = client.get(f"/attempts/{hidden.pk}/survey/").content.decode()
    assert 'id="final-score"' not in html and "Did your final score match" in html
