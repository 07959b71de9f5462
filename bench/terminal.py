#!/usr/bin/env python
"""
Terminal benchmark: keystroke echo round trip and output throughput, through the app
(browser-side WebSocket -> uvicorn -> bridge -> SSH -> tmux) and through a direct SSH
connection to the same machine and the same kind of tmux session, in one run.

    sudo /work/main/.venv/bin/python bench/terminal.py [--keys 300] [--megabytes 100]

Needs root (it creates a throwaway Unix user as the expert's machine), PostgreSQL and Redis
as for the tests (a throwaway test database is created and dropped). Prints a Markdown table
for bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "baseliner.settings_test")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

PROMPT_MARK = "BENCH-READY"


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


# --- through the app ----------------------------------------------------------------------
async def app_session(url, cookie, origin):
    import websockets

    ws = await websockets.connect(url, additional_headers={"Cookie": f"sessionid={cookie}", "Origin": origin},
                                  max_size=None, compression=None)
    return ws


async def app_recv(ws, state):
    """One output frame (acked at once, as a fast browser would); control frames skipped."""
    while True:
        msg = await ws.recv()
        if isinstance(msg, bytes):
            state["unacked"] += len(msg)
            if state["unacked"] >= 65536:
                await ws.send(json.dumps({"type": "ack", "bytes": state["unacked"]}))
                state["unacked"] = 0
            return msg


async def app_until(ws, state, needle: bytes, buf=None):
    buf = bytearray() if buf is None else buf
    total = 0
    while needle not in buf[-(len(needle) + 65536):]:
        chunk = await app_recv(ws, state)
        total += len(chunk)
        buf += chunk
        if len(buf) > 1 << 20:
            del buf[:-65536]
    return total


async def bench_app(live_url, attempt_id, cookie, keys, file_path, size):
    state = {"unacked": 0}
    url = live_url.replace("http://", "ws://") + f"/ws/attempts/{attempt_id}/terminals/bench/?cols=120&rows=40"
    ws = await app_session(url, cookie, live_url)

    async def flush_ack():
        if state["unacked"]:
            await ws.send(json.dumps({"type": "ack", "bytes": state["unacked"]}))
            state["unacked"] = 0

    await ws.send(f"clear; echo {PROMPT_MARK[:5]}''{PROMPT_MARK[5:]}\r".encode())
    await app_until(ws, state, PROMPT_MARK.encode())
    await asyncio.sleep(0.5)
    # drain
    try:
        while True:
            await asyncio.wait_for(app_recv(ws, state), 0.3)
    except asyncio.TimeoutError:
        pass
    lat = []
    for i in range(keys):
        ch = b"x" if i % 2 == 0 else b"\x7f"  # type and erase, so the line never grows
        t0 = time.perf_counter()
        await ws.send(ch)
        await app_recv(ws, state)
        lat.append((time.perf_counter() - t0) * 1000)
        await flush_ack()
        await asyncio.sleep(0.01)
    # throughput: cat a file, wait for the marker printed after it
    marker = secrets.token_hex(6)
    t0 = time.perf_counter()
    await ws.send(f"cat {file_path}; echo {marker[:6]}''{marker[6:]}\r".encode())
    wire = await app_until(ws, state, marker.encode())
    elapsed = time.perf_counter() - t0
    await ws.close()
    return lat, size / elapsed / 1e6, wire / elapsed / 1e6


# --- direct SSH -------------------------------------------------------------------------
def bench_direct(machine, keys, file_path, size):
    from baseliner.workspace.bridge import tmux_command
    from baseliner.workspace.machine import expert_client

    client = expert_client(machine=machine)
    chan = client.get_transport().open_session()
    chan.get_pty(term="xterm-256color", width=120, height=40)
    chan.exec_command(tmux_command(machine=machine, name="benchdirect", read_only=False))

    def until(needle: bytes):
        buf, total = bytearray(), 0
        while needle not in buf[-(len(needle) + 65536):]:
            d = chan.recv(65536)
            if not d:
                raise RuntimeError("channel closed")
            total += len(d)
            buf += d
            if len(buf) > 1 << 20:
                del buf[:-65536]
        return total

    chan.send(f"clear; echo {PROMPT_MARK[:5]}''{PROMPT_MARK[5:]}\r".encode())
    until(PROMPT_MARK.encode())
    time.sleep(0.5)
    while chan.recv_ready():
        chan.recv(65536)
        time.sleep(0.3)
    lat = []
    for i in range(keys):
        ch = b"x" if i % 2 == 0 else b"\x7f"
        t0 = time.perf_counter()
        chan.send(ch)
        chan.recv(65536)
        lat.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.01)
    marker = secrets.token_hex(6)
    t0 = time.perf_counter()
    chan.send(f"cat {file_path}; echo {marker[:6]}''{marker[6:]}\r".encode())
    wire = until(marker.encode())
    elapsed = time.perf_counter() - t0
    chan.close()
    client.close()
    return lat, size / elapsed / 1e6, wire / elapsed / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=300, help="keystrokes per path (default 300)")
    parser.add_argument("--megabytes", type=int, default=100, help="size of the file cat'ed for throughput (default 100)")
    args = parser.parse_args()

    from provisioning.sshd import LoopbackSshd
    from baseliner.devtools.processes import ServerProcess, database_env, free_port
    from tests.workspace_support import destroy_machine_attempt, make_machine_attempt, session_cookie

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    sshd_dir = f"/tmp/bl-bench-sshd-{secrets.token_hex(4)}"
    sshd = LoopbackSshd(sshd_dir)
    sshd.start()
    server = ServerProcess(free_port(), Path(f"/tmp/bl-bench-uvicorn-{secrets.token_hex(3)}.log"),
                           env=lambda: database_env(connection.settings_dict))
    m = None
    try:
        server.start()
        m = make_machine_attempt(sshd)
        from baseliner.workspace.machine import machine_info

        machine = machine_info(attempt=m.attempt)
        size = args.megabytes * 1_000_000
        file_path = f"{m.home}/bench.txt"
        # Printable text (base64 lines), like a log being cat'ed.
        m.run(f"head -c {size * 3 // 4} /dev/urandom | base64 -w 100 | head -c {size} > {file_path}; chown {m.unix_user} {file_path}")
        cookie = session_cookie(m.expert)
        app_lat, app_mbps, app_wire = asyncio.run(bench_app(server.url, m.attempt.pk, cookie, args.keys, file_path, size))
        direct_lat, direct_mbps, direct_wire = bench_direct(machine, args.keys, file_path, size)
    finally:
        if m is not None:
            destroy_machine_attempt(m)
        server.stop()
        sshd.stop()
        shutil.rmtree(sshd_dir, ignore_errors=True)
        connection.creation.destroy_test_db(old_name, verbosity=0)

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    print(f"\nDate: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {os.cpu_count()} CPUs (nproc {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()}), {cpu}; Python {platform.python_version()}")
    print(f"Command: {' '.join([sys.executable.replace(str(ROOT) + '/', ''), 'bench/terminal.py', *sys.argv[1:]])}\n")
    print("| path | echo p50 (ms) | echo p99 (ms) | `cat` of a {} MB file (MB/s of file) | bytes on the wire (MB/s) |".format(args.megabytes))
    print("|---|---|---|---|---|")
    for name, lat, mbps, wire in (("app (WebSocket → bridge → SSH → tmux)", app_lat, app_mbps, app_wire),
                                  ("direct SSH (paramiko → tmux)", direct_lat, direct_mbps, direct_wire)):
        print(f"| {name} | {statistics.median(lat):.2f} | {percentile(lat, 99):.2f} | {mbps:.1f} | {wire:.1f} |")
    print(f"\nEcho p50 ratio app/direct: {statistics.median(app_lat) / statistics.median(direct_lat):.2f}x")


if __name__ == "__main__":
    main()
