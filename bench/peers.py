"""
One terminal, each contender, same run, same loopback sshd: baseliner against the peers.

    sudo .venv/bin/python bench/peers.py [--targets openssh,openssh-tmux,paramiko,paramiko-tmux,webssh,baseliner,baseliner-norec]
                                        (also: asyncssh, asyncssh-tmux; after bench/setup_peers.sh)
                                        [--big-mb 200] [--echo 300] [--busy-echo 100] [--sessions 10] [--json out.json]

Per contender: time to first prompt on connect and on reconnect, keystroke echo round trip
(p50/p99) at a quiet prompt and while the same terminal prints a line every 5 ms, `cat` of a
big file (MB/s of the file; the time runs from Enter until the line after it is on screen), Ctrl-C during `yes` (until the prompt is back), CPU seconds per MB of the
bridge process (the `ssh` client, this process for paramiko, webssh's tornado, baseliner's
uvicorn) and of the sshd sessions, and memory per idle and per busy session of the bridge.

"openssh-tmux" is the direct client attached to a tmux session, as baseliner's terminals are
(each baseliner terminal is a tmux session on the machine): it is the like-for-like floor;
"paramiko-tmux" is the same through paramiko (baseliner's SSH library) read on an event loop;
"asyncssh-tmux" the same through asyncssh, which reads the socket on the event loop itself
(paramiko reads it in a thread of its own and wakes the loop through a pipe): the SSH library's
share of a bridge's echo and scroll.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (PROMPT, AsyncsshSession, BenchHost, OpenSSHSession, ParamikoSession, WebsshServer,  # noqa: E402
                      WebsshSession, command_line, cpu_seconds, load, machine_facts, ms, pct, rss_bytes)

DONE = b"DONE-DONE"
DONE_CMD = b"echo DONE-''DONE"


class Target:
    label = ""
    tmux = False

    def __init__(self, host: BenchHost):
        self.host = host

    async def session(self, i: int = 0, *, name: str | None = None):
        raise NotImplementedError

    def bridge_pids(self, sessions) -> list[int]:
        pids = []
        for s in sessions:
            pids += s.server_pids()
        return sorted(set(pids))

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class Direct(Target):
    """One SSH client per terminal and no web server: ``session_cls`` at a login shell, or, where
    ``tmux`` is set, attached to a tmux session as every baseliner terminal is."""
    session_cls = OpenSSHSession

    async def session(self, i=0, *, name=None):
        cmd = f"exec tmux -u new-session -A -s {name or 'bench'}" if self.tmux else None
        s = self.session_cls(self.host, self.host.users[i % len(self.host.users)], command=cmd)
        await s.open()
        return s


class OpenSSH(Direct):
    label = "direct OpenSSH (pty)"


class OpenSSHTmux(Direct):
    label = "direct OpenSSH + tmux"
    tmux = True


class Paramiko(Direct):
    label = "direct paramiko"
    session_cls = ParamikoSession


class ParamikoTmux(Paramiko):
    label = "direct paramiko + tmux"
    tmux = True


class Asyncssh(Direct):
    label = "direct asyncssh"
    session_cls = AsyncsshSession


class AsyncsshTmux(Asyncssh):
    label = "direct asyncssh + tmux"
    tmux = True


class Webssh(Target):
    label = "webssh 1.6.3"

    def start(self):
        self.server = WebsshServer(self.host, self.host.dir)
        self.server.start()

    def stop(self):
        self.server.stop()

    async def session(self, i=0, *, name=None):
        s = WebsshSession(self.server, self.host.users[i % len(self.host.users)])
        await s.open()
        return s


def baseliner_target(key: str):
    from _baseliner import BaselinerTarget

    if key == "baseliner-norec":
        class NoRecording(BaselinerTarget):
            label = "baseliner (recording off)"
            record = False
        return NoRecording
    return BaselinerTarget


TARGETS = {"openssh": OpenSSH, "openssh-tmux": OpenSSHTmux, "paramiko": Paramiko, "paramiko-tmux": ParamikoTmux,
           "asyncssh": Asyncssh, "asyncssh-tmux": AsyncsshTmux,
           "webssh": Webssh,
           "baseliner": None, "baseliner-norec": None}


async def connect_time(target: Target, name: str):
    t0 = time.monotonic()
    s = await target.session(0, name=name)
    await s.wait_for(PROMPT, 0, 30)
    return s, time.monotonic() - t0


# Letters no terminal control sequence of tmux's ends in, so a repaint of the stream is never
# taken for the echo.
BUSY_KEYS = b"QWYV"
# One process that prints (as a training run is), not a shell loop forking `sleep` 200 times a
# second: in such a loop the Ctrl-C that ends it was now and then lost (the loop went on) or
# left the shell reading EOF (it logged out), in about one run in five of peers.py.
STREAM_CMD = b"perl -e '$| = 1; while (1) { print \"1\\n\"; select(undef, undef, undef, 0.005) }'\r"


async def busy_echo(s, keys: int) -> tuple[float, float]:
    """Echo round trip (p50, p99 ms) while the same terminal prints a line every few ms, as a
    training run's log does: typing at 100 ms intervals, each key waited for by its letter."""
    await s.send(STREAM_CMD)
    await asyncio.sleep(1.0)
    rtts = []
    for i in range(keys):
        key = BUSY_KEYS[i % len(BUSY_KEYS):i % len(BUSY_KEYS) + 1]
        since = s.mark()
        t0 = time.monotonic()
        await s.send(key)
        rtts.append(await s.wait_for(key, since, 5) - t0)
        await asyncio.sleep(0.1)
    since = s.mark()
    await s.send(b"\x03")
    await s.wait_for(PROMPT, since, 10)
    await s.send(b"\x15")
    await s.quiet()
    return pct(rtts, 50) * 1000, pct(rtts, 99) * 1000


async def measure(target: Target, args) -> dict:
    out: dict = {"target": target.label}
    name = "b" + secrets.token_hex(3)
    # connect / reconnect
    s, t_connect = await connect_time(target, name)
    await s.quiet()
    reconnects = []
    for _ in range(args.reconnects):
        await s.close()
        s, t = await connect_time(target, name)
        reconnects.append(t)
        await s.quiet()
    out["connect_s"] = t_connect
    out["reconnect_s"] = statistics.median(reconnects)
    # echo
    await s.send(b"\x15")
    await s.quiet()
    rtts = []
    letters = b"abcdefghijklmnopqrstuvwxyz"
    for i in range(args.echo):
        since = s.mark()
        t0 = time.monotonic()
        await s.send(letters[i % 26:i % 26 + 1])
        t1 = await s.wait_output(since, 5)
        rtts.append(t1 - t0)
        if i % 40 == 39:
            await s.send(b"\x15")
            await s.quiet(0.05)
        else:
            await asyncio.sleep(0.01)
    await s.send(b"\x15")
    await s.quiet()
    out["echo_p50_ms"], out["echo_p99_ms"] = pct(rtts, 50) * 1000, pct(rtts, 99) * 1000
    if args.busy_echo:
        out["busy_echo_p50_ms"], out["busy_echo_p99_ms"] = await busy_echo(s, args.busy_echo)
    # throughput
    pids = target.bridge_pids([s])
    cpu0, sshd0, recv0 = cpu_seconds(pids), target.host.sshd_children_cpu(), s.received
    since = s.mark()
    t0 = time.monotonic()
    await s.send(f"cat {target.host.big}; ".encode() + DONE_CMD + b"\r")
    t1 = await s.wait_for(DONE, since, args.timeout)
    cpu1, sshd1 = cpu_seconds(pids), target.host.sshd_children_cpu()
    mb = target.host.big_mb
    out["cat_MBps"] = mb / (t1 - t0)
    out["cat_s"] = t1 - t0
    out["wire_MB"] = (s.received - recv0) / 1e6
    out["bridge_cpu_s_per_MB"] = (cpu1 - cpu0) / mb
    out["sshd_cpu_s_per_MB"] = (sshd1 - sshd0) / mb
    await s.quiet()
    # Ctrl-C during yes
    ctrlc = []
    for _ in range(3):
        await s.send(b"yes\r")
        await asyncio.sleep(1.0)
        since = s.mark()
        t0 = time.monotonic()
        await s.send(b"\x03")
        try:
            t1 = await s.wait_for(PROMPT, since, 30)
            ctrlc.append(t1 - t0)
        except asyncio.TimeoutError:
            ctrlc.append(float("inf"))
        await s.quiet(0.3, 30)
    out["ctrl_c_s"] = max(ctrlc)
    await s.close()
    # memory per idle / busy session of the bridge
    if args.sessions:
        base_pids = target.bridge_pids([]) or pids
        rss0 = rss_bytes(base_pids) if base_pids != [target.host.sshd.pid()] else 0
        many = []
        for i in range(args.sessions):
            many.append(await target.session(i, name=f"{name}m{i}"))
        for m in many:
            await m.wait_for(PROMPT, 0, 30)
        await asyncio.sleep(1.0)
        pids = target.bridge_pids(many)
        rss_idle = rss_bytes(pids)
        for m in many:
            await m.send(b"yes\r")
        peak = 0
        for _ in range(20):
            await asyncio.sleep(0.1)
            peak = max(peak, rss_bytes(pids))
        # Ctrl-C to all at once, then wait: one at a time, the nine `yes` still running (with
        # their tmux servers, all at nice 0 on 2 cores) starved this client for minutes, long
        # enough for a server's keepalive ping to time out (seen for baseliner and its
        # recording-off twin, on alternate runs).
        marks = [m.mark() for m in many]
        for m in many:
            with contextlib.suppress(Exception):
                await m.send(b"\x03")

        async def prompt_back(m, since):
            with contextlib.suppress(Exception):  # `yes` must not outlive the run (tmux keeps it)
                await m.wait_for(PROMPT, since, 20)

        await asyncio.gather(*(prompt_back(m, since) for m, since in zip(many, marks)))
        for m in many:
            await m.close()
        if target.__class__ is OpenSSH or target.__class__ is OpenSSHTmux:
            out["idle_MB_per_session"] = rss_idle / args.sessions / 1e6
            out["busy_MB_per_session"] = peak / args.sessions / 1e6
        else:
            out["idle_MB_per_session"] = (rss_idle - rss0) / args.sessions / 1e6
            out["busy_MB_per_session"] = (peak - rss0) / args.sessions / 1e6
    out["load"] = load()
    return out


def print_table(rows: list[dict]) -> None:
    cols = [("target", "contender", "{}"), ("connect_s", "connect s", "{:.3f}"), ("reconnect_s", "reconnect s", "{:.3f}"),
            ("echo_p50_ms", "echo p50 ms", "{:.2f}"), ("echo_p99_ms", "echo p99 ms", "{:.2f}"),
            ("busy_echo_p50_ms", "echo p50 ms while printing", "{:.2f}"), ("busy_echo_p99_ms", "p99", "{:.2f}"),
            ("cat_MBps", "cat MB/s", "{:.1f}"), ("wire_MB", "wire MB", "{:.0f}"), ("ctrl_c_s", "Ctrl-C s", "{:.3f}"),
            ("bridge_cpu_s_per_MB", "bridge CPU s/MB", "{:.4f}"), ("sshd_cpu_s_per_MB", "sshd CPU s/MB", "{:.4f}"),
            ("idle_MB_per_session", "idle MB/session", "{:.2f}"), ("busy_MB_per_session", "busy MB/session", "{:.2f}"),
            ("load", "load (1/5/15 min)", "{}")]
    print("| " + " | ".join(c[1] for c in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(c[2].format(r[c[0]]) if c[0] in r else "-" for c in cols) + " |")


async def main(args) -> None:
    print("machine:", json.dumps(machine_facts()))
    print("command:", command_line())
    rows = []
    with BenchHost(n_users=max(1, args.sessions), big_mb=args.big_mb) as host:
        for key in args.targets.split(","):
            cls = TARGETS[key] or baseliner_target(key)
            target = cls(host)
            try:
                target.start()
                row = await measure(target, args)
            except Exception as exc:  # one contender failing must not lose the others' figures
                import traceback

                traceback.print_exc()
                row = {"target": target.label, "error": repr(exc)}
            finally:
                target.stop()
            print(json.dumps(row), flush=True)
            rows.append(row)
    print()
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_facts(), "command": command_line(), "rows": rows}, indent=1))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", default="openssh,openssh-tmux,paramiko,paramiko-tmux,webssh,baseliner,baseliner-norec")
    p.add_argument("--big-mb", type=int, default=200)
    p.add_argument("--echo", type=int, default=300, help="keystrokes for the echo figure")
    p.add_argument("--busy-echo", type=int, default=100,
                   help="keystrokes for the echo figure while the terminal prints (0: skip)")
    p.add_argument("--reconnects", type=int, default=3)
    p.add_argument("--sessions", type=int, default=10, help="sessions for the memory figures (0: skip)")
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--json")
    asyncio.run(main(p.parse_args()))
