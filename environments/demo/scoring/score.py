"""
Scorer of the demo environment (runs on the machine as the scorer user, never as the expert).

Threat model: the expert's code runs in a child process *as the expert* (through
``$BASELINER_AS_EXPERT``, a sudo rule that lets only the scorer user act as that one expert), so
it can neither read this folder nor write the result. The child gets only ``n`` and prints its
answer; this process picks ``n`` from the OS's randomness, computes the right answer itself,
and measures the child's wall time from outside, so a child cannot claim a time it did not take.
"""
import json
import math
import os
import secrets
import shlex
import subprocess
import sys
import threading
import time

SEPARATOR = "===BASELINER RESULT 7c1e==="
CHILD = """
import sys
sys.path.insert(0, '.')
from solve import count_primes
print("ready", flush=True)
n = int(sys.stdin.readline())
print(count_primes(n), flush=True)
"""

def result(score, message, **details):
    print("\n" + SEPARATOR)
    print(json.dumps({"score": score, "message": message, "details": details}))
    sys.exit(0)


def truth(n: int) -> int:
    sieve = bytearray([1]) * n
    sieve[0:2] = b"\0\0"
    for p in range(2, int(n ** 0.5) + 1):
        if sieve[p]:
            sieve[p * p::p] = bytes(len(range(p * p, n, p)))
    return sum(sieve)


def main():
    home = os.environ.get("BASELINER_HOME", os.getcwd())
    as_expert = shlex.split(os.environ.get("BASELINER_AS_EXPERT", ""))
    n = 200_000 + secrets.randbelow(10_000)
    want = truth(n)
    # Start the child and wait until it has imported solve.py, so the time measured below is
    # count_primes alone (not sudo, the interpreter's start or the import).
    proc = subprocess.Popen(as_expert + [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=home)
    timer = threading.Timer(45, proc.terminate)  # SIGTERM: sudo relays it to the solution
    timer.start()
    ready = proc.stdout.readline().strip()
    start = time.perf_counter()
    if ready == "ready":
        proc.stdin.write(f"{n}\n")
        proc.stdin.flush()
    answer = proc.stdout.readline()
    ms = (time.perf_counter() - start) * 1000
    _, stderr = proc.communicate()
    timer.cancel()
    if proc.returncode in (-15, 143):
        result(None, "count_primes took longer than 45 seconds.", n=n)
    if proc.returncode != 0:
        tail = stderr.strip().splitlines()[-3:]
        result(None, "Your solution raised an error: " + " | ".join(tail)[-500:], n=n)
    try:
        got = int(answer.strip())
    except ValueError:
        result(None, f"count_primes({n}) printed no integer.", n=n)
    if got != want:
        result(None, f"Wrong answer: count_primes({n}) returned {got}.", n=n, expected=want)
    result(math.log(ms), f"Correct. count_primes({n}) took {ms:.0f} ms.", n=n, ms=ms)


if __name__ == "__main__":
    main()
