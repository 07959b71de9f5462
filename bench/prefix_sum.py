"""
Time prefix_sum's starting, reference and a wrong solution through its real scorer, to set
y_start and y_ref (environments/prefix_sum/environment.yaml) from measurements.

    .envs/prefix_sum/bin/python bench/prefix_sum.py [--runs 5] [--n 100000000]

On a GPU machine (CUDA torch + Triton) the scorer uses the GPU and N = 100,000,000; on a
CPU-only machine it falls back to the CPU with a small N (not meaningful figures). Prints a
Markdown table for bench/RESULTS.md and the constants to put in the manifest (the median
log(ms) of each solution).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = ROOT / "environments" / "prefix_sum"
SEPARATOR = "===BASELINER RESULT 7c1e==="
WRONG = '''
import torch
def prefix_sum(x):
    positive = (x > 0).to(torch.int64)
    upto = torch.cumsum(positive, 0)  # wrong: counts x[j] itself
    return torch.cumsum(torch.where(upto % 2 == 1, x.to(torch.int64), 0), 0).to(torch.int32)
'''


def score(solution: str, n: int | None) -> dict:
    with tempfile.TemporaryDirectory() as home:
        Path(home, "solution.py").write_text(solution)
        env = dict(os.environ, BASELINER_HOME=home)
        if n:
            env["PREFIX_SUM_N"] = str(n)
        out = subprocess.run([sys.executable, str(ENV / "scoring" / "score.py")], cwd=ENV / "scoring", env=env,
                             capture_output=True, text=True, timeout=900).stdout
        return json.loads(out.rpartition(SEPARATOR)[2])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--n", type=int, default=None)
    args = p.parse_args()
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (not meaningful)"
    solutions = {"starting": (ENV / "files" / "solution.py").read_text(),
                 "reference": (ENV / "reference" / "solution.py").read_text(), "wrong": WRONG}
    print(f"device: {device}; torch {torch.__version__}\n")
    print("| solution | runs | median ms/call | median log(ms) | result |\n|---|---|---|---|---|")
    medians = {}
    for name, code in solutions.items():
        results = [score(code, args.n) for _ in range(args.runs if name != "wrong" else 1)]
        scores = [r["score"] for r in results if r["score"] is not None]
        if scores:
            medians[name] = statistics.median(scores)
            ms = statistics.median(r["details"]["ms_per_call"] for r in results if r["score"] is not None)
            print(f"| {name} | {len(results)} | {ms:.3f} | {medians[name]:.4f} | correct |")
        else:
            print(f"| {name} | {len(results)} | – | – | rejected: {results[0]['message'][:80]} |")
    if {"starting", "reference"} <= medians.keys():
        print(f"\nenvironment.yaml: y_start: {medians['starting']:.4f}   y_ref: {medians['reference']:.4f}   (measured on {device})")


if __name__ == "__main__":
    main()
