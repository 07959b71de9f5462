"""Analysis figures from a hand-made score log, checked against values computed by hand."""
import math

import pytest

from baseliner.attempts.models import Cohort
from baseliner.audit.models import AuditEvent
from baseliner.review import analysis
from baseliner.review.services import ReviewActionError, attempt_invalidate, attempt_revalidate
from tests import factories
from tests.review_data import finished_attempt, score, survey_answer

pytestmark = pytest.mark.django_db


@pytest.fixture
def pool():
    """Environment 'kernel' (raw 0 → 0, raw 10 → 1, best counts) with four finished attempts:

    a1: 0.2 @0.5h, 0.5 @1.5h, 0.3 @2.8h, an error @5.6h       final 0.5  survey yes
    a2: 0.03 @1.1h, 0.8 @6.9h                                  final 0.8  survey partly
    a3: only an invalid solution, ended after 2 h              final 0    (no survey)
    a4: 1.0 @0.1h, marked invalid later by the tests           final 1.0  survey no
    """
    env = factories.environment(slug="kernel", y_start=0.0, y_ref=10.0)
    cohort = Cohort.objects.create(name="Nov 2026")
    a1 = finished_attempt(env=env, cohort=cohort)
    score(a1, 1800, 2.0)
    score(a1, 5400, 5.0, trigger="command")
    score(a1, 10000, 3.0)
    score(a1, 20000, None, status="error")
    survey_answer(a1, {"score_matched_expectations": "yes"})
    a2 = finished_attempt(env=env, cohort=cohort)
    score(a2, 4000, 0.3)
    score(a2, 25000, 8.0)
    score(a2, 28700, 8.0, trigger="final")  # the final scoring: counts for the score, not as an expert scoring
    survey_answer(a2, {"score_matched_expectations": "Partly", "comments": "fine"})
    a3 = finished_attempt(env=env, cohort=cohort, hours=2)
    score(a3, 600, None, status="invalid", trigger="command")
    a4 = finished_attempt(env=env)
    score(a4, 360, 10.0)
    survey_answer(a4, {"score_matched_expectations": "no"})
    return {"env": env, "cohort": cohort, "a1": a1, "a2": a2, "a3": a3, "a4": a4}


def only_group(**filters):
    groups = analysis.analysis_groups(**filters)
    assert len(groups) == 1
    return groups[0]


def test_score_at_k_is_the_expected_maximum_over_k_drawn_without_replacement():
    scores = [0.0, 0.5, 0.8]
    assert analysis.score_at_k(scores, 1) == pytest.approx((0 + 0.5 + 0.8) / 3)
    # pairs: {0,.5}→.5, {0,.8}→.8, {.5,.8}→.8
    assert analysis.score_at_k(scores, 2) == pytest.approx((0.5 + 0.8 + 0.8) / 3)
    assert analysis.score_at_k(scores, 3) == pytest.approx(0.8)
    # four scores, k=2: six pairs, maxima 2,3,4,3,4,4
    assert analysis.score_at_k([1, 2, 3, 4], 2) == pytest.approx((2 + 3 + 4 + 3 + 4 + 4) / 6)
    with pytest.raises(ValueError, match="k must be between 1 and 3, not 4"):
        analysis.score_at_k(scores, 4)


def test_best_so_far_and_last_aggregation():
    points = [(1000, 0.2), (5000, 0.8), (9000, 0.4)]
    assert analysis.best_so_far(points, 999, aggregation="best") == 0.0
    assert analysis.best_so_far(points, 3600, aggregation="best") == 0.2
    assert analysis.best_so_far(points, 4 * 3600, aggregation="best") == 0.8
    assert analysis.best_so_far(points, 4 * 3600, aggregation="last") == 0.4
    assert analysis.best_so_far(points, 2 * 3600, aggregation="last") == 0.8


def test_figures_of_a_hand_made_score_log(pool):
    attempt_invalidate(attempt=pool["a4"], actor=factories.user(staff=True), reason="used the reference solution")
    g = only_group()
    assert g.n == 3
    assert sorted(g.finals) == pytest.approx([0.0, 0.5, 0.8])
    s = g.summary()
    assert s["without_score"] == 1
    assert s["share_above_threshold"] == pytest.approx(2 / 3)
    assert s["mean_final"] == pytest.approx(1.3 / 3)
    assert s["median_final"] == pytest.approx(0.5)
    # surveys: yes, partly (a3 has none)
    assert s["survey_answered"] == 2
    assert s["share_matched"] == pytest.approx(0.5)
    assert s["share_matched_or_partly"] == pytest.approx(1.0)
    # expert scorings: a1 4 in 8 h, a2 2 in 8 h (the final one does not count), a3 1 in 2 h
    assert s["scorings_per_hour_pooled"] == pytest.approx(7 / 18)
    assert s["scorings_per_hour_mean"] == pytest.approx((4 / 8 + 2 / 8 + 1 / 2) / 3)
    at = {r["hours"]: r for r in g.at_hours()}
    assert at[1]["mean"] == pytest.approx(0.2 / 3) and at[1]["median"] == 0.0
    assert at[2]["mean"] == pytest.approx(0.53 / 3) and at[2]["median"] == pytest.approx(0.03)
    assert at[4]["mean"] == pytest.approx(0.53 / 3) and at[4]["median"] == pytest.approx(0.03)
    assert at[8]["mean"] == pytest.approx(1.3 / 3) and at[8]["median"] == pytest.approx(0.5)
    assert [r["score"] for r in g.score_at_k()] == pytest.approx([1.3 / 3, 2.1 / 3, 0.8])


def test_last_aggregation_counts_the_final_submission():
    env = factories.environment(slug="fit", y_start=10.0, y_ref=0.0, direction="lower", aggregation="last")
    a = finished_attempt(env=env)
    score(a, 1000, 8.0)   # 0.2
    score(a, 5000, 2.0)   # 0.8
    score(a, 9000, 6.0)   # 0.4
    g = only_group(environment="fit")
    assert g.finals == pytest.approx([0.4])
    assert [r["mean"] for r in g.at_hours()] == pytest.approx([0.2, 0.8, 0.4, 0.4])


def test_with_last_aggregation_an_invalid_final_submission_counts_nothing():
    env = factories.environment(slug="fit", aggregation="last")
    a = finished_attempt(env=env)
    score(a, 1000, 0.8)
    score(a, 5000, None, status="invalid")
    score(a, 9000, None, status="error")  # a scoring error never counts, either way
    g = only_group(environment="fit")
    assert g.finals == [0.0] and g.without_score == 1
    assert [r["mean"] for r in g.at_hours()] == pytest.approx([0.8, 0.0, 0.0, 0.0])


def test_missing_survey_question_leaves_the_share_empty(pool):
    for r in pool["env"].attempts.all():
        if hasattr(r, "survey_response"):
            r.survey_response.answers = {"comments": "no such question"}
            r.survey_response.save(update_fields=["answers"])
    s = only_group().summary()
    assert s["share_matched"] is None and s["survey_answered"] == 0


def test_an_invalidated_attempt_leaves_the_analysis_and_comes_back_when_revalidated(pool):
    staff = factories.user(staff=True)
    assert only_group().n == 4
    attempt_invalidate(attempt=pool["a4"], actor=staff, reason="used the reference solution")
    assert only_group().n == 3
    assert only_group(include_invalid=True).n == 4
    attempt_revalidate(attempt=pool["a4"], actor=staff)
    g = only_group()
    assert g.n == 4 and max(g.finals) == pytest.approx(1.0)
    actions = list(AuditEvent.objects.filter(attempt=pool["a4"]).order_by("pk").values_list("action", "reason"))
    assert actions == [("attempt.invalidate", "used the reference solution"), ("attempt.revalidate", "")]


def test_invalidating_needs_a_reason(pool):
    with pytest.raises(ReviewActionError, match="Say why the attempt is invalid"):
        attempt_invalidate(attempt=pool["a1"], actor=factories.user(staff=True), reason="  ")
    pool["a1"].refresh_from_db()
    assert pool["a1"].is_invalid is False


def test_the_default_surveys_question_id_counts_too(pool):
    response = pool["a1"].survey_response
    response.answers = {"score_matched": "no"}
    response.save(update_fields=["answers"])
    s = only_group(environment="kernel", include_invalid=True).summary()
    assert s["survey_answered"] == 3 and s["share_matched"] == pytest.approx(0.0)


def test_cohort_filter(pool):
    assert only_group(cohort=pool["cohort"].pk).n == 3


def test_analysis_page_and_csv_show_the_same_numbers(client, pool):
    client.force_login(factories.user(staff=True))
    page = client.get("/review/analysis/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-environment="kernel"' in html
    assert "75 %" in html  # 3 of 4 above 0.05
    csv_text = client.get("/review/analysis.csv?kind=summary").content.decode()
    rows = [line.split(",") for line in csv_text.strip().splitlines()]
    k3 = [r for r in rows if r[1] == "score_at_k" and r[2] == "4"]
    assert float(k3[0][3]) == pytest.approx(1.0)
    per_attempt = client.get("/review/analysis.csv?kind=attempts").content.decode().strip().splitlines()
    assert len(per_attempt) == 1 + 4
    assert math.isclose(float(per_attempt[1].split(",")[5]), 0.5)
