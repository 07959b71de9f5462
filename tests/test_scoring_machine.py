"""Scoring on a real machine (loopback sshd, real Unix users): the scorer runs as the scorer
user through the lease, misbehaving scorers become error entries and the attempt goes on, the
expert cannot get at the scorer, the reference or the machine's score log, and METR families
score through the task helper."""
from pathlib import Path

import pytest

from baseliner.attempts.states import State
from baseliner.catalog.loader import load_folder
from baseliner.catalog.services import environment_upsert
from baseliner.machines.services import lease_teardown
from baseliner.scoring.models import ScoreEntry
from baseliner.scoring.services import score_log_verify, score_request, score_run_process
from tests import factories
from tests.scoring_machine import local_machines, start_machine  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
ROOT = Path(__file__).resolve().parent.parent
TEST_ENVS = Path(__file__).resolve().parent / "environments"


def load(folder: Path, task: str | None = None):
    specs = load_folder(folder)
    spec = specs[0] if task is None else next(s for s in specs if s.fields["metr_task_name"] == task)
    return environment_upsert(spec=spec, source_path=folder.name)[0]



def score(attempt) -> ScoreEntry:
    run, _ = score_request(attempt=attempt, trigger=ScoreEntry.Trigger.BUTTON, user=attempt.expert)
    return score_run_process(run_id=run.pk)


def test_demo_scores_the_reference_well_above_the_starting_solution(start_machine):
    attempt = factories.attempt(env=load(ROOT / "environments" / "demo"))
    machine = start_machine(attempt)
    start = score(attempt)
    assert start.status == "ok", start.message
    assert start.message.startswith("Correct. count_primes(")
    assert -1.0 < start.normalized_score < 0.5  # timings on a shared 2-core test machine are noisy
    reference = (ROOT / "environments/demo/reference/solve.py").read_text()
    machine.as_expert(f"cat > solve.py <<'EOF'\n{reference}\nEOF")
    ref = score(attempt)
    assert ref.status == "ok", ref.message
    assert ref.normalized_score > start.normalized_score + 0.3
    assert ref.sequence == 2


def test_misbehaving_scorers_give_error_entries_and_the_attempt_goes_on(start_machine):
    attempt = factories.attempt(env=load(TEST_ENVS / "misbehaving"))
    machine = start_machine(attempt)

    def with_mode(mode):
        assert machine.as_expert(f"echo '{mode}' > mode.txt").ok
        return score(attempt)

    entry = with_mode("crash")
    assert entry.status == "error"
    assert "The scorer crashed (exit status 1)" in entry.message
    assert "the scorer fell over" in entry.details["log_tail"]

    entry = with_mode("hang")
    assert entry.status == "error"
    assert entry.message == "Scoring did not finish within its 4 s limit and was stopped; this run does not count."
    assert entry.scoring_seconds < 15

    entry = with_mode("flood")
    assert entry.status == "error"
    assert entry.message.startswith("The scorer printed more than 0.0625 MB of output, so it was stopped")

    entry = with_mode("nan")
    assert entry.status == "error"
    assert entry.message == "The scorer returned nan, not a finite number; this run does not count."
    assert entry.raw_score is None and entry.normalized_score is None

    entry = with_mode("invalid")
    assert (entry.status, entry.message) == ("invalid", "Wrong answer at index 3.")

    entry = with_mode("ok 7.5")
    assert (entry.status, entry.raw_score, entry.normalized_score) == ("ok", 7.5, 0.75)
    attempt.refresh_from_db()
    assert attempt.state == State.RUNNING
    assert list(attempt.score_entries.values_list("sequence", flat=True)) == [1, 2, 3, 4, 5, 6]
    assert score_log_verify(attempt=attempt) == []


def test_the_scorer_runs_as_the_scorer_user_never_as_the_expert(start_machine):
    attempt = factories.attempt(env=load(TEST_ENVS / "misbehaving"))
    machine = start_machine(attempt)
    machine.as_expert("echo whoami > mode.txt")
    entry = score(attempt)
    assert entry.message == machine.scorer
    # The sudo rule that lets the scorer act as the expert goes with the lease.
    sudoers = Path(f"/etc/sudoers.d/baseliner-{machine.scorer}")
    assert sudoers.exists()
    lease_teardown(lease=machine.lease, reason="test")
    assert not sudoers.exists()


def test_the_expert_cannot_read_or_replace_the_scorer_nor_touch_the_machine_score_log(start_machine):
    attempt = factories.attempt(env=load(ROOT / "environments" / "demo"))
    machine = start_machine(attempt)
    assert score(attempt).status == "ok"
    protected = machine.protected
    assert (protected / "score.py").exists() and (protected / "score_log.jsonl").exists()
    for command in (
        f"cat {protected}/score.py",
        f"ls {protected}",
        f"cat {protected}/score_log.jsonl",
        f"echo forged >> {protected}/score_log.jsonl",
        f"echo 'print(1)' > {protected}/score.py",
        f"rm -f {protected}/score.py",
        f"mv {protected} {machine.home}/stolen",
        "sudo -n true",
    ):
        result = machine.as_expert(command)
        assert result.exit_status != 0, f"the expert could run: {command}\n{result.stdout}"
    # The reference solution never reaches the machine.
    found = machine.as_expert(f"grep -rl 'Reference solution (hidden' {machine.home} {machine.machine_dir} 2>/dev/null; true")
    assert found.stdout.strip() == ""
    assert "Reference solution (hidden" not in (protected / "score.py").read_text()
    # ...and the scorer still works, unchanged.
    assert score(attempt).status == "ok"
    assert len((protected / "score_log.jsonl").read_text().splitlines()) == 2


def test_a_metr_family_scores_through_the_task_helper(start_machine):
    attempt = factories.attempt(env=load(TEST_ENVS / "word_count", task="small"))
    machine = start_machine(attempt)
    # TaskFamily.start ran as root with the lease's home at /home/agent, and handed it to the expert.
    listing = machine.as_expert("stat -c %U words.txt && wc -w < words.txt")
    owner, count = listing.stdout.split()
    assert owner == machine.expert
    entry = score(attempt)
    assert (entry.status, entry.raw_score) == ("ok", 0.0)
    assert entry.message == "result: no number in answer.txt"
    assert entry.details["expected"] == int(count)
    machine.as_expert(f"echo {count} > answer.txt")
    entry = score(attempt)
    assert (entry.status, entry.raw_score, entry.normalized_score, entry.message) == ("ok", 1.0, 1.0, "result: correct")
    # The family's protected file is out of the expert's reach.
    assert machine.as_expert(f"cat {machine.protected}/word_count/word_count.py").exit_status != 0


@pytest.mark.timeout(1200)
def test_prefix_sum_scores_through_the_lease_on_cpu(start_machine):
    """The flagship end to end on a CPU-only host: its requirements are installed into a venv on
    the machine (once per host), the scorer checks the expert's solution, run as the expert."""
    attempt = factories.attempt(env=load(ROOT / "environments" / "prefix_sum"))
    machine = start_machine(attempt)
    entry = score(attempt)
    assert entry.status == "ok", entry.message
    assert entry.message.startswith("Correct. ") and "CPU with a small input" in entry.message
    machine.as_expert("cat > solution.py <<'EOF'\nimport torch\ndef prefix_sum(x):\n    y = torch.zeros_like(x)\n    return y\nEOF")
    entry = score(attempt)
    assert entry.status == "invalid"
    assert entry.message.startswith("Wrong answer at index ")
    # The expert's shell finds the environment's Python packages too.
    assert machine.as_expert("bash -lc 'python -c \"import torch, triton; print(torch.__version__)\"'").stdout.startswith("2.13.0")
