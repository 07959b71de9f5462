"""
Many experts at once: N simulated experts typing at human speed through one contender.

    sudo .venv/bin/python bench/concurrency.py --target webssh|baseliner [--n 10,50,100,200,400]
                                              [--duration 30] [--no-storm] [--workers W] [--json out.json]
                                              [--webssh-tmux: webssh's shells in tmux, like baseliner's]
    sudo .venv/bin/python bench/concurrency.py --target paramiko|asyncssh|openssh --n 200 --no-storm

The targets paramiko, asyncssh and openssh are the floor under any web terminal: the SSH
library alone in this process (or one OpenSSH client process per expert), attached to the same
tmux sessions, typed at by the same simulated experts. They show what the SSH library and the
machine (sshd + tmux) cost before any web server is involved.

Each simulated expert has its own Unix user on one loopback sshd and one terminal. All N
connect at once (the time for the last one to see its prompt is the login figure); then for
``--duration`` seconds each types a key every 150-250 ms and waits for its echo, and one in ten
also prints 2 MB (`cat` of a file) every 20 s. A keystroke with no echo within 5 s is a stall.
Then the server is killed and started again and all N reconnect at once (the reconnect storm):
the figure is the time from the server listening again until the last expert has a prompt.
Sampled once a second: the server's CPU (share of one core), RSS and threads, the sshd
sessions' CPU, and this load generator's own CPU (it must not be the bottleneck); while the
experts type, how late the generator's own event loop runs a 10 ms timer (its p99 is the part of
the echo tail that is the client's own).
For baseliner, recording completeness: every byte the bridge sent to each expert must be in
that terminal's asciicast.

``--profile`` samples the server with py-spy while the experts type, ``--profile-logins`` while
they all log in (each for the N in ``--profile-n``); the row gets the hottest frames.
``WEB_GIL_SWITCH_INTERVAL=0.005`` (Python's default) in the environment reaches the server: the
A/B for the product's shorter interval.

The load generator is one asyncio process (uvloop) with the ``websockets`` client.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import re
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil  # noqa: E402

from _harness import (PROMPT, BenchHost, SessionClosed, WebsshServer, WebsshSession, command_line,  # noqa: E402
                      cpu_seconds, load, machine_facts, pct, rss_bytes, threads)

KEYS = b"qwrtyuiopasdfgjklzxv"  # none of them is in the prompt "bench$ "
DONE = b"DONE-DONE"
STALL = 5.0


# With --webssh-tmux each bench user's login shell is a tmux session, as every baseliner
# terminal is (and as LibraryLoad's are): the like-for-like comparison on the same machine load.
TMUX_ATTACH = "tmux -u new-session -A -s bench"  # every bench session's tmux, whoever starts it
TMUX_LOGIN = f'[ -z "$TMUX" ] && exec {TMUX_ATTACH}\n. ~/.bashrc\n'


class WebsshLoad:
    label = "webssh 1.6.3"

    def __init__(self, host: BenchHost, tmux: bool = False):
        self.host = host
        self.server = WebsshServer(host, host.dir)
        if tmux:
            self.label = "webssh 1.6.3 (shells in tmux)"
            for user in host.users:
                Path(user.home, ".bash_profile").write_text(TMUX_LOGIN)

    def start(self):
        self.server.start()

    def stop(self):
        self.server.stop()

    def restart(self):
        self.server.restart()

    @property
    def pid(self):
        return self.server.pid

    async def connect(self, i: int):
        s = WebsshSession(self.server, self.host.users[i])
        await s.open()
        return s

    async def reconnect(self, i: int, old):
        """webssh has no reattach: a new login, a new shell."""
        return await self.connect(i)

    def recording_check(self, sessions) -> str:
        return "n/a (webssh records nothing)"


class LibraryLoad:
    """An SSH library alone, in this process: N sessions attached to tmux (as every baseliner
    terminal is), read on this event loop. Isolates what the SSH library costs a relay process
    (paramiko: a transport thread per connection; asyncssh: none) from the web server's own."""

    def __init__(self, host: BenchHost, lib: str):
        from _harness import AsyncsshSession, OpenSSHSession, ParamikoSession

        self.host, self.lib = host, lib
        self.cls = {"paramiko": ParamikoSession, "asyncssh": AsyncsshSession, "openssh": OpenSSHSession}[lib]
        self.label = f"{lib} (in-process, tmux)" if lib != "openssh" else "OpenSSH clients (one `ssh` each, tmux)"
        self.pid = os.getpid()

    def start(self):
        pass

    def stop(self):
        pass

    def restart(self):
        pass

    async def connect(self, i: int):
        s = self.cls(self.host, self.host.users[i], command=f"exec {TMUX_ATTACH}")
        await s.open()
        return s

    async def reconnect(self, i: int, old):
        await close_quietly(old)
        return await self.connect(i)

    def recording_check(self, sessions) -> str:
        return "n/a"


class Expert:
    def __init__(self, i: int, burster: bool):
        self.i, self.burster = i, burster
        self.session = None
        self.rtts: list[float] = []
        self.stalls = 0
        self.bursts = 0
        self.burst_failures = 0
        self.login_s: float | None = None
        self.error: str | None = None


async def login(load_target, expert: Expert, t_start: float, reconnect: bool = False, tries: int = 3) -> None:
    """Connect until a prompt shows, as a person clicking Connect again would (at most
    ``tries`` times); ``expert.lost`` counts the attempts that failed."""
    expert.login_s, expert.lost = None, 0
    for attempt in range(tries):
        try:
            if reconnect:
                expert.session = await load_target.reconnect(expert.i, expert.session)
            else:
                expert.session = await load_target.connect(expert.i)
            expert.session.keep_all = getattr(load_target, "keep_output", False)
            await expert.session.wait_for(PROMPT, 0, 60)
            expert.login_s = time.monotonic() - t_start
            return
        except Exception as exc:
            expert.error = f"{type(exc).__name__}: {exc}"[:200]
            expert.lost += 1
            await asyncio.sleep(0.5)


async def type_for(expert: Expert, until: float, rng: random.Random) -> None:
    s = expert.session
    # The first burst falls inside the run, so every burster bursts at least once.
    next_burst = time.monotonic() + rng.uniform(1, max(2.0, min(20.0, until - time.monotonic() - 3))) \
        if expert.burster else float("inf")
    typed = 0
    await s.send(b"\x15")
    await s.quiet(0.1, 5)
    while time.monotonic() < until:
        await asyncio.sleep(rng.uniform(0.15, 0.25))
        if time.monotonic() >= until:
            break
        try:
            if time.monotonic() >= next_burst:
                next_burst += 20
                await s.send(b"\x15")
                await s.quiet(0.05, 5)
                since = s.mark()
                await s.send(b"cat " + str(expert.host_burst).encode() + b"; echo DONE-''DONE\r")
                try:
                    await s.wait_for(DONE, since, 30)
                    expert.bursts += 1
                except asyncio.TimeoutError:
                    expert.burst_failures += 1
                await s.quiet(0.1, 10)
                typed = 0
                continue
            key = KEYS[typed % len(KEYS):typed % len(KEYS) + 1]
            since = s.mark()
            t0 = time.monotonic()
            await s.send(key)
            try:
                t1 = await s.wait_for(key, since, STALL)
                expert.rtts.append(t1 - t0)
            except asyncio.TimeoutError:
                expert.stalls += 1
            typed += 1
            if typed % 30 == 0:
                await s.send(b"\x15")
                await s.quiet(0.05, 5)
        except SessionClosed:
            expert.error = "session closed while typing"
            return


class Sampler:
    """Once a second: server CPU, RSS, threads; sshd CPU; this process's CPU."""

    def __init__(self, load_target, host: BenchHost):
        self.load_target, self.host = load_target, host
        self.me = psutil.Process()
        self.rows = []
        self.task = None

    async def run(self):
        pid = self.load_target.pid
        last = (time.monotonic(), cpu_seconds([pid]), self.host.sshd_children_cpu(), sum(self.me.cpu_times()[:2]))
        while True:
            await asyncio.sleep(1.0)
            pid = self.load_target.pid
            now = (time.monotonic(), cpu_seconds([pid]), self.host.sshd_children_cpu(), sum(self.me.cpu_times()[:2]))
            dt = now[0] - last[0]
            self.rows.append({
                "server_cpu": max(0.0, now[1] - last[1]) / dt, "sshd_cpu": max(0.0, now[2] - last[2]) / dt,
                "gen_cpu": (now[3] - last[3]) / dt, "rss": rss_bytes([pid]), "threads": threads(pid),
            })
            last = now

    def __enter__(self):
        self.task = asyncio.ensure_future(self.run())
        return self

    def __exit__(self, *exc):
        self.task.cancel()

    def summary(self) -> dict:
        rows = self.rows or [{"server_cpu": 0, "sshd_cpu": 0, "gen_cpu": 0, "rss": 0, "threads": 0}]
        mean = lambda k: sum(r[k] for r in rows) / len(rows)  # noqa: E731
        return {"server_cpu_pct": 100 * mean("server_cpu"), "server_cpu_peak_pct": 100 * max(r["server_cpu"] for r in rows),
                "sshd_cpu_pct": 100 * mean("sshd_cpu"), "gen_cpu_pct": 100 * mean("gen_cpu"),
                "server_rss_MB": max(r["rss"] for r in rows) / 1e6, "server_threads": max(r["threads"] for r in rows)}


async def run_n(load_target, host: BenchHost, n: int, args) -> dict:
    rng = random.Random(n)
    experts = [Expert(i, burster=(i % 10 == 9)) for i in range(n)]
    for e in experts:
        e.host_burst = host.burst
    row: dict = {"target": load_target.label, "n": n}
    # everyone logs in at once
    profile_logins = args.profile_logins and n in args.profile_n
    spy = start_profile(load_target.pid, 15, f"{args.profile_logins}.{n}") if profile_logins else None
    if spy is not None:
        await asyncio.sleep(1.0)  # py-spy attaches
    t0 = time.monotonic()
    with Sampler(load_target, host) as login_sampler:
        await asyncio.gather(*(login(load_target, e, t0) for e in experts))
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # it writes what it sampled so far
        await asyncio.to_thread(spy.wait, 60)
        row["login_profile"] = summarize_profile(f"{args.profile_logins}.{n}")
    ok = [e for e in experts if e.login_s is not None]
    row["logins_lost"] = sum(e.lost for e in experts)
    row["logins_failed"] = n - len(ok)
    row["login_last_s"] = max((e.login_s for e in ok), default=float("nan"))
    row["login_p50_s"] = pct([e.login_s for e in ok], 50)
    errors = sorted({e.error for e in experts if e.error})
    # typing
    for e in experts:
        e.error = None
    until = time.monotonic() + args.duration
    spy = start_profile(load_target.pid, args.duration, f"{args.profile}.{n}") if args.profile and n in args.profile_n else None
    with Sampler(load_target, host) as sampler, no_collector_pauses(), LoopLag() as gen_lag:
        await asyncio.gather(*(type_for(e, until, random.Random(rng.random())) for e in ok))
    if spy is not None:
        await asyncio.to_thread(spy.wait, 60)
        row["profile"] = summarize_profile(f"{args.profile}.{n}")
    rtts = [r for e in ok for r in e.rtts]
    row.update({"keys": len(rtts), "echo_p50_ms": pct(rtts, 50) * 1000, "echo_p95_ms": pct(rtts, 95) * 1000,
                "echo_p99_ms": pct(rtts, 99) * 1000, "echo_max_ms": max(rtts, default=float("nan")) * 1000,
                "stalls": sum(e.stalls for e in ok), "bursts": sum(e.bursts for e in ok),
                "burst_failures": sum(e.burst_failures for e in ok)})
    row.update(sampler.summary())
    row["gen_lag_p99_ms"], row["gen_lag_max_ms"] = pct(gen_lag.lags, 99) * 1000, max(gen_lag.lags, default=float("nan")) * 1000
    row["login_server_cpu_peak_pct"] = login_sampler.summary()["server_cpu_peak_pct"]
    errors += sorted({e.error for e in ok if e.error})
    # reconnect storm
    if args.storm:
        t_restart = time.monotonic()
        await asyncio.to_thread(load_target.restart)
        t1 = time.monotonic()
        row["restart_s"] = t1 - t_restart
        for e in ok:
            e.error = None
        await asyncio.gather(*(login(load_target, e, t1, reconnect=True) for e in ok))
        back = [e for e in ok if e.login_s is not None]
        row["storm_lost"] = sum(e.lost for e in ok)
        row["storm_failed"] = len(ok) - len(back)
        row["storm_last_s"] = max((e.login_s for e in back), default=float("nan"))
        # echo right after the storm: is everyone really back?
        for e in back:
            e.rtts, e.stalls = [], 0
        until = time.monotonic() + 3
        with no_collector_pauses():
            await asyncio.gather(*(type_for(e, until, random.Random(rng.random())) for e in back if not e.burster))
        after = [r for e in back for r in e.rtts]
        row["storm_echo_p99_ms"] = pct(after, 99) * 1000
        row["storm_stalls"] = sum(e.stalls for e in back)
        errors += sorted({e.error for e in ok if e.error})
    row["load"] = load()
    sessions = [e.session for e in experts if e.session is not None]
    await asyncio.gather(*(close_quietly(s) for s in sessions))
    await asyncio.sleep(2)  # the server closes (and so flushes) each recording on disconnect
    row["recording"] = load_target.recording_check(sessions)
    row["errors"] = errors[:5]
    return row


class LoopLag:
    """How late this load generator's own event loop runs a timer due every 10 ms: an echo that
    arrived while the loop was busy elsewhere is timed late by as much, so its p99 is the part of
    every contender's echo tail that is the client's own."""

    def __init__(self, every: float = 0.01):
        self.every, self.lags, self.task = every, [], None

    async def run(self):
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.every
            await asyncio.sleep(self.every)
            self.lags.append(max(0.0, loop.time() - due))

    def __enter__(self):
        self.task = asyncio.ensure_future(self.run())
        return self

    def __exit__(self, *exc):
        self.task.cancel()


@contextlib.contextmanager
def no_collector_pauses():
    """The load generator's own cyclic GC stays off while it times echoes: a full collection
    with 200 clients took 26-47 ms of CPU, an echo delay that every contender would have
    been charged for (2026-12-04 19:08, a gc.callbacks hook). Reference counting still frees
    almost everything; what is left is collected after."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
        gc.collect()


def start_profile(pid: int, duration: float, path: str):
    """py-spy samples the server (all threads, 100 Hz) while the experts type."""
    import shutil
    import subprocess

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(int(duration)), "--rate", "100",
                             "--format", "raw", "--output", path, "--nonblocking", "--threads"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize_profile(path: str, top: int = 12) -> dict:
    """Where the server's samples went: by package (inclusive, per thread kind) and by leaf function."""
    from collections import Counter

    packages, leaves, threads_ = Counter(), Counter(), Counter()
    total = 0
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        thread = frames[0]
        threads_["paramiko transport threads" if "transport.py" in stack and "run" in stack else
                 "event loop" if "base_events.py" in stack or "uvloop" in stack else
                 "other threads (executors, ...)"] += n
        leaves[re.sub(r"\(.*/", "(", frames[-1])] += n
        seen = {pkg for pkg in ("paramiko", "cryptography", "websockets", "channels", "channels_redis", "redis", "asgiref",
                                "django", "uvicorn", "asyncio", "baseliner", "json", "psycopg", "tornado", "webssh")
                if re.search(rf"[(/]{pkg}/", stack)}
        for pkg in seen:
            packages[pkg] += n
    pct_ = lambda c: {k: round(100 * v / max(total, 1), 1) for k, v in c.most_common(top)}  # noqa: E731
    return {"samples": total, "by_thread": pct_(threads_), "by_package_inclusive_pct": pct_(packages),
            "top_leaf_pct": pct_(leaves)}


async def close_quietly(session) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(session.close(), 10)


def print_table(rows: list[dict]) -> None:
    cols = [("target", "contender", "{}"), ("n", "N", "{}"), ("login_last_s", "last login s", "{:.2f}"),
            ("logins_lost", "lost (retried)", "{}"), ("logins_failed", "failed", "{}"), ("echo_p50_ms", "echo p50 ms", "{:.2f}"), ("echo_p95_ms", "p95", "{:.2f}"),
            ("echo_p99_ms", "p99", "{:.2f}"), ("stalls", "stalls", "{}"), ("burst_failures", "bursts failed", "{}"),
            ("server_cpu_pct", "server CPU % (1 core)", "{:.0f}"), ("server_rss_MB", "server RSS MB", "{:.0f}"),
            ("server_threads", "threads", "{}"), ("sshd_cpu_pct", "sshd CPU %", "{:.0f}"), ("gen_cpu_pct", "load gen CPU %", "{:.0f}"),
            ("gen_lag_p99_ms", "load gen loop lag p99 ms", "{:.1f}"),
            ("restart_s", "server restart s", "{:.2f}"), ("storm_last_s", "storm settled s (after listening)", "{:.2f}"), ("storm_lost", "storm lost (retried)", "{}"), ("storm_failed", "storm failed", "{}"),
            ("storm_stalls", "stalls after storm", "{}"), ("recording", "recording complete", "{}"), ("load", "load", "{}")]
    print("| " + " | ".join(c[1] for c in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(c[2].format(r[c[0]]) if c[0] in r else "-" for c in cols) + " |")


async def main(args) -> None:
    print("machine:", json.dumps(machine_facts()))
    print("command:", command_line())
    ns = [int(x) for x in args.n.split(",")]
    rows = []
    with BenchHost(n_users=max(ns), big_mb=1, machines_nice=args.machines_nice) as host:
        if args.target == "webssh":
            load_target = WebsshLoad(host, tmux=args.webssh_tmux)
        elif args.target in ("paramiko", "asyncssh", "openssh"):
            load_target = LibraryLoad(host, args.target)
        else:
            from _baseliner import BaselinerLoad

            load_target = BaselinerLoad(host, n=max(ns), record=not args.no_record, workers=args.workers)
        try:
            load_target.start()  # in the try: a server that fails to start still has its scratch database dropped
            for n in ns:
                row = await run_n(load_target, host, n, args)
                print(json.dumps(row), flush=True)
                rows.append(row)
                await asyncio.sleep(2)
        finally:
            load_target.stop()
    print()
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_facts(), "command": command_line(), "rows": rows}, indent=1))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", choices=["webssh", "baseliner", "paramiko", "asyncssh", "openssh"], default="baseliner")
    p.add_argument("--n", default="10,50,100,200,400")
    p.add_argument("--duration", type=float, default=30)
    p.add_argument("--no-storm", dest="storm", action="store_false")
    p.add_argument("--no-record", action="store_true", help="baseliner: terminals not recorded")
    p.add_argument("--profile", help="py-spy the server while the experts type; raw stacks go to PROFILE.<n>")
    p.add_argument("--profile-logins", help="py-spy the server while everyone logs in; raw stacks go to PROFILE.<n>")
    p.add_argument("--profile-n", default="200", help="for these N only (comma-separated)")
    p.add_argument("--workers", type=int, default=1, help="baseliner: uvicorn worker processes")
    p.add_argument("--webssh-tmux", action="store_true", help="webssh: each shell in a tmux session, as baseliner's are")
    p.add_argument("--machines-nice", type=int, default=0, metavar="NICE",
                   help="run the loopback sshd and all it forks (each expert's sessions, tmux, shell, bursts) at this "
                        "niceness, so that the experts' machines yield the two cores to the web server and this load "
                        "generator, as machines of their own would (default 0: all share the cores equally)")
    p.add_argument("--json")
    args = p.parse_args()
    args.profile_n = [int(x) for x in args.profile_n.split(",")]
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    os.nice(0)
    asyncio.run(main(args))
