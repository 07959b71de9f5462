"""The score log: normalization and aggregation in both directions, the hash chain, one run
at a time, and who sees what (the expert never sees details; tokens are per attempt)."""
import json
import math

import pytest

from baseliner.attempts.services import attempt_clock_start, attempt_transition
from baseliner.attempts.states import State
from baseliner.machines.models import Lease
from baseliner.scoring.models import ScoreEntry, ScoreRun
from baseliner.scoring.services import (
    Outcome, ScoringRefused, machine_token_issue, score_counting_entry, score_log_verify, score_record, score_request,
)
from tests import factories

pytestmark = pytest.mark.django_db
OK, INVALID, ERROR = "ok", "invalid", "error"


def running(**env):
    attempt = factories.attempt(**env)
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    return attempt_clock_start(attempt=attempt)


def record(attempt, raw, status=OK, message="", details=None):
    return score_record(attempt=attempt, outcome=Outcome(raw, status, message, details or {}), trigger="button")


def test_lower_is_better_normalizes_and_the_best_entry_counts():
    attempt = running(direction="lower", aggregation="best", y_start=3.0, y_ref=1.0)
    entries = [record(attempt, r) for r in (3.0, 1.5, 2.0, 4.0)]
    assert [e.normalized_score for e in entries] == [0.0, 0.75, 0.5, -0.5]
    assert score_counting_entry(attempt=attempt) == entries[1]


def test_higher_is_better_normalizes_and_the_best_entry_counts():
    attempt = running(direction="higher", aggregation="best", y_start=10.0, y_ref=20.0)
    entries = [record(attempt, r) for r in (12.0, 25.0, 15.0)]
    assert [e.normalized_score for e in entries] == [0.2, 1.5, 0.5]
    assert score_counting_entry(attempt=attempt) == entries[1]


@pytest.mark.parametrize("direction,y_start,y_ref,raws", [("higher", 0.0, 1.0, (0.9, 0.2)), ("lower", 3.0, 1.0, (1.1, 2.9))])
def test_last_aggregation_counts_the_final_entry_even_when_worse(direction, y_start, y_ref, raws):
    attempt = running(direction=direction, aggregation="last", y_start=y_start, y_ref=y_ref)
    record(attempt, raws[0])
    final = record(attempt, raws[1])
    record(attempt, None, ERROR, "The scorer crashed")  # a scoring error does not replace the final submission
    assert score_counting_entry(attempt=attempt) == final


def test_last_aggregation_with_an_invalid_final_solution_counts_nothing():
    attempt = running(aggregation="last")
    record(attempt, 0.9)
    record(attempt, None, INVALID, "Wrong answer")
    assert score_counting_entry(attempt=attempt) is None


def test_errors_and_invalid_entries_never_count_for_best():
    attempt = running()
    assert score_counting_entry(attempt=attempt) is None
    record(attempt, None, ERROR, "timeout")
    record(attempt, None, INVALID, "wrong")
    assert score_counting_entry(attempt=attempt) is None


@pytest.mark.parametrize("raw", [math.nan, math.inf, "12abc"])
def test_a_non_finite_raw_score_is_an_error_entry(raw):
    attempt = running()
    entry = record(attempt, raw, OK, "looks fine")
    assert entry.status == ERROR and entry.raw_score is None and entry.normalized_score is None
    assert "this run does not count" in entry.message or entry.message == "The scorer returned a score that is not a number."


def test_the_hash_chain_detects_an_edited_entry():
    attempt = running()
    entries = [record(attempt, r, message=f"run {r}") for r in (0.1, 0.2, 0.3)]
    assert score_log_verify(attempt=attempt) == []
    assert entries[1].prev_hash == entries[0].entry_hash and entries[0].prev_hash == ""
    ScoreEntry.objects.filter(pk=entries[1].pk).update(raw_score=0.9, normalized_score=0.9)  # what a tamperer would do
    assert score_log_verify(attempt=attempt) == ["entry #2: its contents were changed after it was recorded"]


def test_the_hash_chain_detects_a_deleted_entry():
    attempt = running()
    entries = [record(attempt, r) for r in (0.1, 0.2, 0.3)]
    ScoreEntry.objects.filter(pk=entries[1].pk).delete()
    assert score_log_verify(attempt=attempt) == [
        "entry #3: expected sequence 2 (an entry is missing)",
        "entry #3: does not follow the entry before it (prev_hash differs)",
    ]


def test_a_second_request_waits_and_says_so():
    attempt = running()
    first, message = score_request(attempt=attempt, trigger="button", user=attempt.expert)
    assert message == "Scoring started."
    second, message = score_request(attempt=attempt, trigger="button", user=attempt.expert)
    assert message == "Another scoring run is in progress; yours is queued and starts when it finishes."
    assert ScoreRun.objects.filter(attempt=attempt, status="queued").count() == 2


def test_scoring_is_refused_before_the_start_and_while_paused():
    attempt = factories.attempt()
    with pytest.raises(ScoringRefused, match="only possible while the attempt is running"):
        score_request(attempt=attempt, trigger="button")
    attempt = running()
    attempt_transition(attempt=attempt, to=State.PAUSED)
    with pytest.raises(ScoringRefused, match="paused"):
        score_request(attempt=attempt, trigger="button")


def test_the_expert_sees_messages_but_never_details(client):
    attempt = running()
    record(attempt, 0.5, message="Correct, 12 ms", details={"reference_ms": 3.2})
    client.force_login(attempt.expert)
    log = client.get(f"/attempts/{attempt.pk}/scores/").json()
    (entry,) = log["entries"]
    assert entry["message"] == "Correct, 12 ms" and "details" not in entry
    assert "reference_ms" not in json.dumps(log)
    assert log["counting_sequence"] == 1


def test_the_raw_score_is_hidden_when_the_environment_says_so(client):
    attempt = running(score_visible_to_expert=False)
    record(attempt, 0.5)
    client.force_login(attempt.expert)
    (entry,) = client.get(f"/attempts/{attempt.pk}/scores/").json()["entries"]
    assert entry["raw_score"] is None and entry["normalized_score"] == 0.5
    staff = factories.user(staff=True)
    client.force_login(staff)
    (entry,) = client.get(f"/attempts/{attempt.pk}/scores/").json()["entries"]
    assert entry["raw_score"] == 0.5 and entry["details"] == {}


def test_another_expert_cannot_score_or_read_the_log(client):
    attempt = running()
    client.force_login(factories.user())
    assert client.post(f"/attempts/{attempt.pk}/score/").status_code == 404
    assert client.get(f"/attempts/{attempt.pk}/scores/").status_code == 404


def test_the_score_button_endpoint_queues_a_run(client):
    attempt = running()
    client.force_login(attempt.expert)
    response = client.post(f"/attempts/{attempt.pk}/score/")
    assert response.status_code == 202 and response.json()["message"] == "Scoring started."
    assert ScoreRun.objects.get(attempt=attempt).trigger == "button"


def lease_for(attempt, state=Lease.State.READY):
    return Lease.objects.create(attempt=attempt, provider="local", state=state, username="x")


def test_a_machine_token_scores_only_its_own_attempt(client):
    attempt, other = running(), running()
    token = machine_token_issue(lease=lease_for(attempt))
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    response = client.post("/api/machine/score", json.dumps({"attempt": other.pk}), content_type="application/json", **auth)
    assert (response.status_code, response.json()["error"]) == (403, "This token belongs to another attempt.")
    assert not ScoreRun.objects.exists()
    response = client.post("/api/machine/score", json.dumps({"attempt": attempt.pk}), content_type="application/json", **auth)
    assert response.status_code == 202
    run = ScoreRun.objects.get()
    assert (run.attempt, run.trigger) == (attempt, "command")
    assert client.get(f"/api/machine/score/{run.pk}", **auth).json() == {"run": run.pk, "status": "queued", "entry": None}


def test_bad_expired_or_replaced_tokens_are_refused(client):
    attempt = running()
    lease = lease_for(attempt)
    old = machine_token_issue(lease=lease)
    new = machine_token_issue(lease=lease)
    for token in ("", "nonsense", old):
        response = client.post("/api/machine/score", "{}", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 401, token
    assert client.get("/api/machine/score_log", HTTP_AUTHORIZATION=f"Bearer {new}").status_code == 200
    Lease.objects.filter(pk=lease.pk).update(state=Lease.State.TORN_DOWN)
    assert client.get("/api/machine/score_log", HTTP_AUTHORIZATION=f"Bearer {new}").status_code == 401
    from baseliner.scoring.models import MachineToken

    assert all(len(t.token_hash) == 64 and new not in t.token_hash for t in MachineToken.objects.all())
