#!/usr/bin/env python
"""
How fast one tmux pane takes in output, with no SSH and no web server: the time a ``cat`` of a
200 MB file (the same 100-character lines as peers.py) runs inside a pane of a private tmux
server using baseliner's own tmux.conf, (a) with no client attached, (b) with one client attached
through a pty that this script drains as fast as it can, and, for reference, (c) the same ``cat``
into a bare pty with no tmux. If (a) is about as slow as (b), the bound on every tmux-backed
terminal's scroll rate is the tmux server parsing the pane, not what it sends its clients.

    .venv/bin/python bench/tmux_pane.py [--mb 200] [--runs 3] [--size 120x40]
"""
from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import ROOT, command_line, load, machine_facts, printable_file, pty_process  # noqa: E402

sys.path.insert(0, str(ROOT))
from baseliner.recording.shell import TMUX_CONF_TEMPLATE  # noqa: E402


def _read_until(fd: int | None, done, timeout: float = 120) -> int:
    """Read ``fd`` (a client's pty, or nothing) until ``done()``; the bytes read."""
    got, deadline = 0, time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no end within {timeout:.0f} s")
        if fd is None:
            time.sleep(0.05)
        elif select.select([fd], [], [], 0.05)[0]:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:  # EIO: the pty's other side closed
                chunk = b""
            if not chunk:
                break
            got += len(chunk)
    return got


def run_tmux(tmp: Path, big: Path, attached: bool, cols: int, rows: int, extra: str = "") -> tuple[float, int]:
    """Seconds the pane's ``cat`` of ``big`` took, and the bytes its client (if any) was sent."""
    # A socket of its own each run: a server just killed may still hold the last one.
    sock, conf, done, times = tmp / f"sock{time.monotonic_ns()}", tmp / "tmux.conf", tmp / "done", tmp / "times"
    conf.write_text(TMUX_CONF_TEMPLATE + extra)
    for p in (done, times):
        p.unlink(missing_ok=True)
    # The pane waits for the client (if any) to attach, then times its own cat.
    script = f"sleep 1; s=$(date +%s.%N); cat {big}; e=$(date +%s.%N); echo $s $e > {times}; touch {done}; sleep 30"
    tmux = ["tmux", "-S", str(sock), "-f", str(conf)]
    subprocess.run([*tmux, "new-session", "-d", "-x", str(cols), "-y", str(rows), "sh", "-c", script], check=True)
    client = fd = None
    try:
        if attached:
            client, fd = pty_process([*tmux, "attach"], cols, rows, env={**os.environ, "TERM": "xterm-256color"})
        wire = _read_until(fd, done.exists)
        s, e = map(float, times.read_text().split())
        return e - s, wire
    finally:
        if client:
            client.kill()
            client.wait()
            os.close(fd)
        subprocess.run([*tmux, "kill-server"], capture_output=True)


def run_bare_pty(big: Path, cols: int, rows: int) -> float:
    """Seconds a ``cat`` of ``big`` straight into a pty that this process drains takes."""
    t0 = time.perf_counter()
    proc, fd = pty_process(["cat", str(big)], cols, rows)
    try:
        _read_until(fd, lambda: False)  # to EOF
    finally:
        proc.wait()
        os.close(fd)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=int, default=200)
    p.add_argument("--runs", type=int, default=3, help="each row this many times, interleaved")
    p.add_argument("--size", default="120x40", help="pane columns x rows")
    p.add_argument("--conf-extra", action="append", default=[], metavar="LINES",
                   help="also time a detached pane with these tmux.conf lines appended (';'-separated; repeatable), "
                        "e.g. 'set -g history-limit 0'")
    args = p.parse_args()
    cols, rows = map(int, args.size.split("x"))
    print("machine:", json.dumps(machine_facts()))
    print("command:", command_line())
    print("tmux:", subprocess.run(["tmux", "-V"], capture_output=True, text=True).stdout.strip())
    results = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        big = tmp / "big.txt"
        printable_file(big, args.mb * 1_000_000)
        for _ in range(args.runs):
            secs = run_bare_pty(big, cols, rows)
            results.append(("bare pty, no tmux (reference)", secs, None, load()))
            secs, _ = run_tmux(tmp, big, attached=False, cols=cols, rows=rows)
            results.append(("tmux pane, no client attached", secs, None, load()))
            secs, wire = run_tmux(tmp, big, attached=True, cols=cols, rows=rows)
            results.append(("tmux pane, one client attached (drained)", secs, wire, load()))
            for extra in args.conf_extra:
                secs, _ = run_tmux(tmp, big, attached=False, cols=cols, rows=rows, extra="\n".join(extra.split(";")) + "\n")
                results.append((f"tmux pane, no client, conf + `{extra}`", secs, None, load()))
    print(f"| {args.size} pane, {args.mb} MB | cat s | MB/s | client wire MB | load |")
    print("|---|---|---|---|---|")
    for label, secs, wire, at in results:
        w = "" if wire is None else f"{wire / 1e6:.1f}"
        print(f"| {label} | {secs:.2f} | {args.mb / secs:.1f} | {w} | {at} |")


if __name__ == "__main__":
    main()
