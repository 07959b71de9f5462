"""For an environment aggregated by the final submission, the end steps run one last scoring
on the real machine before it is torn down, and that entry is the attempt's final result."""
from pathlib import Path

import pytest

from baseliner.attempts.ending import attempt_end_steps_run
from baseliner.attempts.lifecycle import attempt_end
from baseliner.attempts.states import EndReason
from baseliner.catalog.loader import load_folder
from baseliner.catalog.services import environment_upsert
from baseliner.machines.models import Lease
from baseliner.scoring.models import ScoreEntry
from tests import factories
from tests.scoring_machine import local_machines, start_machine  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
ROOT = Path(__file__).resolve().parent.parent


def test_the_final_submission_is_scored_at_the_end_and_counts(start_machine):
    spec = load_folder(ROOT / "environments" / "demo")[0]
    env = environment_upsert(spec=spec, source_path="demo")[0]
    env.aggregation = "last"
    env.save(update_fields=["aggregation"])
    attempt = factories.attempt(env=env)
    machine = start_machine(attempt)
    reference = (ROOT / "environments/demo/reference/solve.py").read_text()
    assert machine.as_expert(f"cat > solve.py <<'EOF'\n{reference}\nEOF").ok

    attempt_end(attempt=attempt, reason=EndReason.EXPERT, actor=attempt.expert)
    steps = attempt_end_steps_run(attempt_id=attempt.pk)
    assert {k: v["status"] for k, v in steps.items()} == {
        "close_terminals": "done", "archive": "done", "final_scoring": "done", "final_result": "done", "teardown": "done",
    }, steps
    final = ScoreEntry.objects.get(attempt=attempt, trigger=ScoreEntry.Trigger.FINAL)
    assert final.status == "ok", final.message
    attempt.refresh_from_db()
    assert attempt.final_score == final and attempt.final_normalized_score == final.normalized_score
    assert Lease.objects.get(attempt=attempt).state == Lease.State.TORN_DOWN
