"""
Scorer of prefix_sum. Runs on the machine as the scorer user (never as the expert).

Protocol with the expert's code: the solution runs in a child process *as the expert*
(``$BASELINER_AS_EXPERT``), which imports ``~/solution.py`` and talks to this process over its
stdin/stdout pipes only:

1. this process draws a seed from the OS (``secrets``) and sends it with the size and device;
   the child builds the input from it (so 400 MB never cross a pipe on the way in), calls the
   solution once and sends back that output's shape, dtype, device and bytes;
2. this process builds the same input, computes the reference in PyTorch (int64, wrapped to
   int32) and compares exactly: a wrong answer names the first wrong index;
3. the child warms up; then this process says "go" and measures the wall time until the child
   says the timed calls are done (each call synchronizes the device). A fresh input per timed
   call is pre-built by the child, so caching one answer does not help.

The raw score is log(milliseconds per call) from *this* process's clock. What stays trusted,
as in RE-Bench's in-process scorer: a solution deliberately built to do its work outside the
timed window; reviewers catch that in the recording. What cannot happen: the solution reading
this file, the reference solution (never on the machine), or writing the result.
"""
import json
import math
import os
import secrets
import shlex
import struct
import subprocess
import sys
import time

SEPARATOR = "===BASELINER RESULT 7c1e==="
LOW, HIGH = -100, 101  # values in [-100, 100]

CHILD = r'''
import json, os, struct, sys, time
out = sys.stdout.buffer
sys.stdout = sys.stderr  # the solution's prints go to stderr, never into the protocol
def send(obj, payload=b""):
    data = json.dumps(obj).encode()
    out.write(struct.pack("<QQ", len(data), len(payload)) + data)
    if payload:
        out.write(payload)
    out.flush()
try:
    import torch
    cfg = json.loads(sys.stdin.readline())
    sys.path.insert(0, os.getcwd())
    from solution import prefix_sum
    device = torch.device(cfg["device"])
    def make(seed):
        g = torch.Generator(device=device)
        g.manual_seed(seed)
        return torch.randint(cfg["low"], cfg["high"], (cfg["n"],), generator=g, device=device, dtype=torch.int32)
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
    x = make(cfg["seed"])
    y = prefix_sum(x)
    sync()
    if not isinstance(y, torch.Tensor):
        send({"error": f"prefix_sum returned {type(y).__name__}, not a torch.Tensor"})
        sys.exit(0)
    meta = {"shape": list(y.shape), "dtype": str(y.dtype), "device": str(y.device)}
    ok = y.dtype == torch.int32 and tuple(y.shape) == tuple(x.shape)
    send(meta, y.detach().to("cpu").contiguous().numpy().tobytes() if ok else b"")
    if not ok:
        sys.exit(0)
    inputs = [make(s) for s in cfg["timing_seeds"]]
    for i in range(cfg["warmup"]):
        prefix_sum(inputs[i % len(inputs)])
    sync()
    send({"ready": True})
    sys.stdin.readline()  # "go"
    for xi in inputs:
        prefix_sum(xi)
        sync()
    send({"done": True})
except Exception as exc:
    import traceback
    traceback.print_exc()
    send({"error": f"{type(exc).__name__}: {exc}"[:500]})
'''


def result(score, message, **details):
    print("\n" + SEPARATOR)
    print(json.dumps({"score": score, "message": message, "details": details}))
    sys.exit(0)


def reference(x):
    import torch

    positive = (x > 0).to(torch.int64)
    before = torch.cumsum(positive, 0) - positive
    included = torch.where(before % 2 == 1, x.to(torch.int64), torch.zeros((), dtype=torch.int64, device=x.device))
    return torch.cumsum(included, 0).to(torch.int32)


def stop(child) -> str:
    """End the child and return the tail of its stderr. SIGTERM first: through sudo, only a
    signal sudo can relay reaches the solution (a SIGKILL would orphan it, pipes open)."""
    if child.poll() is None:
        child.terminate()
    try:
        _, err = child.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        child.kill()
        return "(the solution did not stop when asked)"
    return err.decode("utf-8", "replace")[-3000:]


def read_message(pipe):
    header = pipe.read(16)
    if len(header) < 16:
        return None, b""
    size, payload_size = struct.unpack("<QQ", header)
    meta = json.loads(pipe.read(size))
    payload = b""
    while len(payload) < payload_size:
        chunk = pipe.read(min(1 << 24, payload_size - len(payload)))
        if not chunk:
            break
        payload += chunk
    return meta, payload


def main():
    import torch

    home = os.environ.get("BASELINER_HOME", os.getcwd())
    cuda = torch.cuda.is_available() and os.environ.get("PREFIX_SUM_DEVICE", "") != "cpu"
    device = "cuda" if cuda else "cpu"
    n = int(os.environ.get("PREFIX_SUM_N", 100_000_000 if cuda else 100_000))
    reps, warmup = (10, 3) if cuda else (3, 1)
    seed = secrets.randbits(62)
    cfg = {"n": n, "device": device, "seed": seed, "low": LOW, "high": HIGH, "warmup": warmup,
           "timing_seeds": [secrets.randbits(62) for _ in range(reps)]}
    env = ["env", "PYTHONDONTWRITEBYTECODE=1"] + ([] if cuda else ["TRITON_INTERPRET=1"])
    cmd = shlex.split(os.environ.get("BASELINER_AS_EXPERT", "")) + env + [sys.executable, "-c", CHILD]
    if not os.path.exists(os.path.join(home, "solution.py")) and not os.environ.get("BASELINER_AS_EXPERT"):
        result(None, "solution.py is missing from your home directory.")
    child = subprocess.Popen(cmd, cwd=home, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    details = {"n": n, "device": device}

    def fail(message):
        result(None, message, **details, solution_stderr=stop(child))

    child.stdin.write((json.dumps(cfg) + "\n").encode())
    child.stdin.flush()
    meta, payload = read_message(child.stdout)
    if meta is None:
        fail("Your solution exited before returning a result (see its error output by running it yourself).")
    if "error" in meta:
        fail(f"Your solution raised an error: {meta['error']}")
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    x = torch.randint(LOW, HIGH, (n,), generator=g, device=device, dtype=torch.int32)
    want = reference(x).cpu()
    if meta["device"].split(":")[0] != device:
        fail(f"Wrong device: the output is on {meta['device']}, the input was on {device}.")
    if meta["dtype"] != "torch.int32":
        fail(f"Wrong dtype: the output is {meta['dtype']}, expected torch.int32.")
    if meta["shape"] != [n]:
        fail(f"Wrong shape: the output has shape {tuple(meta['shape'])}, expected ({n},).")
    got = torch.frombuffer(bytearray(payload), dtype=torch.int32)
    if got.numel() != n:
        fail("Your solution's output was cut short.")
    wrong = (got != want).nonzero()
    if wrong.numel():
        i = int(wrong[0, 0])
        details.update(first_wrong_index=i, got=int(got[i]), expected=int(want[i]), wrong_count=int(wrong.numel()))
        fail(f"Wrong answer at index {i}: got {int(got[i])}, expected {int(want[i])} "
             f"({int(wrong.numel())} of {n} values are wrong).")
    meta, _ = read_message(child.stdout)
    if meta is None or "error" in meta:
        fail(f"Your solution failed during warm-up: {(meta or {}).get('error', 'it exited')}")
    child.stdin.write(b"go\n")
    child.stdin.flush()
    start = time.perf_counter()
    meta, _ = read_message(child.stdout)
    elapsed = time.perf_counter() - start
    if meta is None or "error" in meta:
        fail(f"Your solution failed while being timed: {(meta or {}).get('error', 'it exited')}")
    child.stdin.close()
    child.wait(timeout=60)
    ms = elapsed * 1000 / reps
    details.update(ms_per_call=ms, reps=reps)
    note = "" if cuda else " (CPU with a small input: not a meaningful time)"
    result(math.log(ms), f"Correct. {ms:.3f} ms per call on {n:,} elements{note}.", **details)


if __name__ == "__main__":
    main()
