"""
Logs the cyclic garbage collector's pauses in every Python process started with this folder on
PYTHONPATH and GC_LOG=<dir> in its environment (the web workers inherit both from a benchmark):

    GC_LOG=/tmp/gclog PYTHONPATH=bench/gc_log .venv/bin/python bench/concurrency.py --target baseliner ...
    .venv/bin/python bench/gc_log/sitecustomize.py /tmp/gclog        # prints what each process saw

Each process rewrites <dir>/<pid>.json after every collection: per generation the count and the
CPU milliseconds (thread time, so a process the kernel preempted mid-collection is not charged
for the wait), every collection over 2 ms of CPU or 5 ms of wall time with its CLOCK_MONOTONIC
time (comparable across processes), and the time of the last collection.
"""
import gc
import json
import os
import sys
import time

_DIR = os.environ.get("GC_LOG")


def _install(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{os.getpid()}.json")
    state = {"argv": " ".join(sys.argv)[:200], "gens": {g: {"n": 0, "cpu_ms": 0.0, "max_cpu_ms": 0.0} for g in range(3)},
             "long": [], "last": None}
    started = [0.0, 0.0]

    def callback(phase, info):
        if phase == "start":
            started[:] = time.perf_counter(), time.thread_time()
            return
        wall, cpu = (time.perf_counter() - started[0]) * 1e3, (time.thread_time() - started[1]) * 1e3
        g = state["gens"][info["generation"]]
        g["n"] += 1
        g["cpu_ms"] = round(g["cpu_ms"] + cpu, 2)
        g["max_cpu_ms"] = round(max(g["max_cpu_ms"], cpu), 2)
        state["last"] = round(time.monotonic(), 2)
        if cpu > 2 or wall > 5:
            state["long"].append({"t": state["last"], "gen": info["generation"], "wall_ms": round(wall, 1),
                                  "cpu_ms": round(cpu, 1), "collected": info.get("collected")})
        try:
            with open(path, "w") as f:
                json.dump(state, f)
        except OSError:
            pass

    gc.callbacks.append(callback)


if _DIR and __name__ != "__main__":
    _install(_DIR)

if __name__ == "__main__":
    for name in sorted(os.listdir(sys.argv[1])):
        with open(os.path.join(sys.argv[1], name)) as f:
            s = json.load(f)
        print(f"{name}: {s['argv'][:80]}  (last collection at {s['last']})")
        for g, v in s["gens"].items():
            print(f"  gen {g}: {v['n']} collections, {v['cpu_ms']} ms CPU, longest {v['max_cpu_ms']} ms")
        for c in s["long"]:
            print(f"    at {c['t']}: gen {c['gen']} {c['cpu_ms']} ms CPU ({c['wall_ms']} ms wall), {c['collected']} collected")
