"""
Splits each keystroke's echo into its legs inside baseliner's web workers, to tell where an
echo's tail is spent: the web server, or the machine's side (sshd, tmux, the shell, the
kernel's scheduler), or the WebSocket and the client. Started like bench/gc_log:

    ECHO_LEGS=/tmp/legs PYTHONPATH=bench/echo_legs .venv/bin/python bench/concurrency.py --target baseliner ...
    .venv/bin/python bench/echo_legs/sitecustomize.py /tmp/legs     # prints each worker's legs

For every one-byte keystroke a terminal's bridge sends (Ctrl-U excepted, whose answer is a
redraw), four times on one clock (``time.monotonic``), all in the web worker:
    in      the bridge's ``input`` is called (the frame has crossed uvicorn and the consumer)
    sent    paramiko's ``Channel.send`` has returned (the key is on the SSH socket)
    fed     the first data after it reaches the channel, in paramiko's transport thread
            (sshd, tmux and the shell have answered, and the thread has had the GIL to decode it)
    out     the bridge's ``_deliver`` starts sending that output to the page
Legs: input = sent - in (the web server), machine = fed - sent (everything on the machine's side,
plus the transport thread's wait for the GIL), loop = out - fed (the event loop's turn to read
it, and the output batching of bridge.OUTPUT_EVERY when output came just before), in two parts:
wake = the bridge's first ``Channel.recv`` after it - fed, read_to_send = out - that recv (the
shell-integration parser, the command log, the recording). What the
client measures beyond input + machine + loop is its own loop, the WebSocket both ways and the
page's side of the server (uvicorn's frame send and read).

Each worker also times its event loop's lag (a callback every 10 ms: how late it ran) and, for
the ticks more than 5 ms late, how much of their interval the loop's thread spent running and
how much runnable but waiting for a CPU (the kernel's /proc/.../schedstat), and rewrites <dir>/<pid>.json every 2 s. A keystroke whose echo has not come before the next one
(never in concurrency.py, whose experts wait for each echo) is not counted.
Bench-only: the product never imports this.
"""
import atexit
import importlib.abc
import importlib.util
import json
import os
import sys
import threading
import time

_DIR = os.environ.get("ECHO_LEGS")
_TARGETS = {"baseliner.workspace.bridge", "paramiko.channel"}


def _pct(values, p):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p / 100))] * 1000, 3)


class _State:
    def __init__(self, folder):
        self.path = os.path.join(folder, f"{os.getpid()}.json")
        self.legs = {"input": [], "machine": [], "loop": [], "wake": [], "read_to_send": [], "server_total": []}
        self.lag = []
        self.late = {"n": 0, "lag": 0.0, "cpu": 0.0, "runqueue": 0.0}
        self.dropped = 0
        self.terminals = 0
        self.written = 0.0

    def write(self, force=False):
        now = time.monotonic()
        if not force and now - self.written < 2:
            return
        self.written = now
        out = {"argv": " ".join(sys.argv)[:200], "terminals": self.terminals, "keys": len(self.legs["input"]), "dropped": self.dropped,
               "legs_ms": {k: {"p50": _pct(v, 50), "p95": _pct(v, 95), "p99": _pct(v, 99), "max": _pct(v, 100)}
                           for k, v in self.legs.items()},
               "loop_lag_ms": {"n": len(self.lag), "p50": _pct(self.lag, 50), "p99": _pct(self.lag, 99),
                               "max": _pct(self.lag, 100)},
               "late_ticks": {k: round(v * 1000, 1) if k != "n" else v for k, v in self.late.items()}}
        try:
            with open(self.path, "w") as f:
                json.dump(out, f)
        except OSError:
            pass


def _thread_times():
    """This thread's CPU time and its time runnable but waiting for a CPU (the kernel's
    schedstat: run time, run-queue wait, in ns)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
            run, wait, _ = f.read().split()
        return int(run) / 1e9, int(wait) / 1e9
    except OSError:
        return time.thread_time(), 0.0


def _patch_bridge(module, state):
    Bridge = module.TerminalBridge
    send_now, deliver, start = Bridge._send_now, Bridge._deliver, Bridge.start

    def _send_now(self, data):
        chan = self.chan
        timed = len(data) == 1 and data != b"\x15" and chan is not None
        if timed:
            if getattr(chan, "_legs", None) is not None:
                state.dropped += 1
            # set before the send: the echo may be fed while this thread waits to run again
            chan._legs = legs = [time.monotonic(), None, None]
        rest = send_now(self, data)
        if timed:
            if rest:
                chan._legs = None
            else:
                legs[1] = time.monotonic()
        return rest

    async def _deliver(self, data):
        legs = getattr(self.chan, "_legs", None)
        if legs is not None and legs[2] is not None:
            t_out = time.monotonic()
            self.chan._legs = None
            t_in, t_sent, t_fed, t_read = legs if len(legs) == 4 else (*legs, t_out)
            t_sent = min(t_sent or t_fed, t_fed)
            state.legs["wake"].append(t_read - t_fed)
            state.legs["read_to_send"].append(t_out - t_read)
            state.legs["input"].append(t_sent - t_in)
            state.legs["machine"].append(t_fed - t_sent)
            state.legs["loop"].append(t_out - t_fed)
            state.legs["server_total"].append(t_out - t_in)
            state.write()
        return await deliver(self, data)

    async def start_(self):
        state.terminals += 1
        loop = self.loop
        if not getattr(loop, "_legs_probe", False):
            loop._legs_probe = True

            last = [time.monotonic(), *_thread_times()]

            def tick(due):
                lag = max(0.0, loop.time() - due)
                state.lag.append(lag)
                now = [time.monotonic(), *_thread_times()]
                if lag > 0.005:  # where a late tick's time went: running, or runnable but not run
                    state.late["n"] += 1
                    state.late["lag"] += lag
                    state.late["cpu"] += now[1] - last[1]
                    state.late["runqueue"] += now[2] - last[2]
                last[:] = now
                state.write()
                loop.call_at(loop.time() + 0.01, tick, loop.time() + 0.01)

            loop.call_at(loop.time() + 0.01, tick, loop.time() + 0.01)
        return await start(self)

    Bridge._send_now, Bridge._deliver, Bridge.start = _send_now, _deliver, start_


def _patch_channel(module, state):
    feed, recv = module.Channel._feed, module.Channel.recv

    def recv_(self, nbytes):
        legs = getattr(self, "_legs", None)
        if legs is not None and legs[2] is not None and len(legs) == 3:
            legs.append(time.monotonic())
        return recv(self, nbytes)

    def _feed(self, m):
        legs = getattr(self, "_legs", None)
        if legs is not None and legs[2] is None:
            legs[2] = time.monotonic()
        return feed(self, m)

    module.Channel._feed, module.Channel.recv = _feed, recv_


class _AfterImport(importlib.abc.MetaPathFinder):
    """Patches a target module right after it is first imported."""

    def __init__(self, state):
        self.state = state

    def find_spec(self, name, path, target=None):
        if name not in _TARGETS:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        exec_module, state = spec.loader.exec_module, self.state

        def exec_and_patch(module):
            exec_module(module)
            (_patch_bridge if name.startswith("baseliner") else _patch_channel)(module, state)

        spec.loader.exec_module = exec_and_patch
        return spec


if _DIR and __name__ != "__main__":  # a process that never runs a bridge writes nothing
    os.makedirs(_DIR, exist_ok=True)
    _state = _State(_DIR)
    atexit.register(_state.write, True)
    sys.meta_path.insert(0, _AfterImport(_state))

if __name__ == "__main__":
    for name in sorted(os.listdir(sys.argv[1])):
        with open(os.path.join(sys.argv[1], name)) as f:
            s = json.load(f)
        if not s["keys"] and not s["loop_lag_ms"]["n"]:
            continue
        print(f"{name}: {s['argv'][:80]}")
        print(f"  {s.get('terminals')} terminals opened; {s['keys']} keystrokes timed, {s['dropped']} dropped (next key before the echo)")
        for leg, v in s["legs_ms"].items():
            print(f"  {leg:>12}: p50 {v['p50']} ms, p95 {v['p95']}, p99 {v['p99']}, max {v['max']}")
        lag = s["loop_lag_ms"]
        print(f"  event loop lag ({lag['n']} ticks of 10 ms): p50 {lag['p50']} ms, p99 {lag['p99']}, max {lag['max']}")
        late = s["late_ticks"]
        print(f"  {late['n']} ticks over 5 ms late, {late['lag']} ms late in all; in their intervals the loop's thread ran "
              f"{late['cpu']} ms and waited {late['runqueue']} ms for a CPU (the rest it slept or waited for the GIL)")
