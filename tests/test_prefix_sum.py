"""The prefix_sum scorer on CPU with a small input (Triton's interpreter for kernels): it
accepts the starting and the reference solution and rejects wrong ones with the first
differing index. Timings here are not meaningful; bench/prefix_sum.py measures on a GPU."""
import os
import subprocess
from pathlib import Path

import pytest

from baseliner.scoring.machine.protocol import parse_result

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
ENV = ROOT / "environments" / "prefix_sum"
PYTHON = ROOT / ".envs" / "prefix_sum" / "bin" / "python"

WRONG_AT_12345 = '''
from reference_like import prefix_sum as right
def prefix_sum(x):
    y = right(x)
    y[12345] += 1
    return y
'''


def score_with(tmp_path: Path, solution: str, extra_files: dict | None = None) -> dict:
    if not PYTHON.exists():
        pytest.fail(f"{PYTHON} is missing: scripts/setup.sh builds the prefix_sum environment's virtualenv")
    home = tmp_path / "home"
    home.mkdir()
    (home / "solution.py").write_text(solution)
    for name, text in (extra_files or {}).items():
        (home / name).write_text(text)
    env = {"PATH": os.environ["PATH"], "BASELINER_HOME": str(home), "PREFIX_SUM_N": "50000", "HOME": str(tmp_path)}
    proc = subprocess.run([str(PYTHON), str(ENV / "scoring" / "score.py")], cwd=ENV / "scoring", env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return parse_result(proc.stdout)


def test_the_starting_solution_is_correct(tmp_path):
    result = score_with(tmp_path, (ENV / "files" / "solution.py").read_text())
    assert result["score"] is not None, result
    assert result["message"].startswith("Correct. ")
    assert result["details"]["device"] == "cpu" and result["details"]["n"] == 50000


def test_the_triton_reference_is_correct_under_the_interpreter(tmp_path):
    result = score_with(tmp_path, (ENV / "reference" / "solution.py").read_text())
    assert result["score"] is not None, result
    assert result["message"].startswith("Correct. ")


def test_a_wrong_solution_is_rejected_with_the_first_differing_index(tmp_path):
    result = score_with(tmp_path, WRONG_AT_12345, {"reference_like.py": (ENV / "files" / "solution.py").read_text()})
    assert result["score"] is None
    assert result["message"].startswith("Wrong answer at index 12345: got ")
    assert result["details"]["first_wrong_index"] == 12345


def test_inclusive_parity_is_wrong_at_the_first_positive_value(tmp_path):
    # A classic misreading: counting positives up to and including j instead of before j.
    solution = '''
import torch
def prefix_sum(x):
    positive = (x > 0).to(torch.int64)
    upto = torch.cumsum(positive, 0)
    return torch.cumsum(torch.where(upto % 2 == 1, x.to(torch.int64), 0), 0).to(torch.int32)
'''
    result = score_with(tmp_path, solution)
    assert result["score"] is None
    assert result["message"].startswith("Wrong answer at index ")


@pytest.mark.parametrize(("body", "message"), [
    ("return x.to(torch.int64).cumsum(0)", "Wrong dtype: the output is torch.int64, expected torch.int32."),
    ("return x[:-1].clone()", "Wrong shape: the output has shape (49999,), expected (50000,)."),
    ("raise ValueError('not yet')", "Your solution raised an error: ValueError: not yet"),
    ("return 42", "Your solution raised an error: prefix_sum returned int, not a torch.Tensor"),
])
def test_malformed_outputs_are_explained(tmp_path, body, message):
    result = score_with(tmp_path, f"import torch\ndef prefix_sum(x):\n    {body}\n")
    assert result["score"] is None
    assert message in result["message"]


def test_prints_from_the_solution_do_not_disturb_the_scorer(tmp_path):
    solution = (ENV / "files" / "solution.py").read_text() + "\nprint('===BASELINER RESULT 7c1e===')\nprint('{\"score\": -99}')\n"
    result = score_with(tmp_path, solution)
    assert result["score"] != -99 and result["message"].startswith("Correct. ")
