#!/usr/bin/env python
"""
What one SSH login costs baseliner: ``provisioning.ssh.connect`` to the loopback sshd, then one
command (``ssh.run``, as the scorer and the editor's helpers do), then close; one at a time,
so the figure is latency (timers included), not CPU under load. A terminal's connect and every
reconnect after a reload start with the same login.

Each socket variant is measured in turn, interleaved over ``--rounds``:

    plain     paramiko's own socket: Nagle on, delayed ACKs (baseliner before 2026-12-03)
    nodelay   TCP_NODELAY only
    product   what provisioning/ssh.py ships: TCP_NODELAY and TCP_QUICKACK re-armed per read
              (a terminal stops re-arming once its shell is open; a login and a command do not)

    asyncssh  the same login and command through asyncssh 2.24.1 (an asyncio SSH client, its own
              socket: TCP_NODELAY, no quick ACKs), for the SSH library's share; needs
              bench/setup_peers.sh

    sudo .venv/bin/python bench/ssh_connect.py [--logins 40] [--rounds 2] [--variants plain,nodelay,product,asyncssh]

Besides the latency, each row gives this process's CPU per login (all its threads: paramiko's
transport thread too), the client's share of what logging in costs a web server.
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import ASYNCSSH_DIR, BenchHost, command_line, load, machine_facts, pct  # noqa: E402

from provisioning import ssh  # noqa: E402

PRODUCT_SOCKET = ssh._open_socket


def plain_socket(address: str, port: int, timeout: float) -> socket.socket:
    return socket.create_connection((address, port), timeout=timeout)


def nodelay_socket(address: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection((address, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def paramiko_logins(open_socket):
    """``logins`` with ``open_socket`` under ``provisioning.ssh.connect`` for its duration."""
    def run(host: BenchHost, n: int) -> list[float]:
        ssh._open_socket = open_socket
        try:
            return logins(host, n)
        finally:
            ssh._open_socket = PRODUCT_SOCKET
    return run


def logins(host: BenchHost, n: int) -> list[float]:
    user = host.users[0]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        client = ssh.connect(address="127.0.0.1", port=host.sshd.port, username=user.name,
                             private_key=host.key, host_key=host.sshd.host_key)
        try:
            result = ssh.run(client, "echo ok", timeout=10)
        finally:
            client.close()
        if result.stdout != "ok\n":
            raise RuntimeError(f"unexpected output {result.stdout!r}")
        times.append(time.perf_counter() - t0)
    return times


def asyncssh_logins(host: BenchHost, n: int) -> list[float]:
    if str(ASYNCSSH_DIR) not in sys.path:  # bench/setup_peers.sh puts it there, not in the app's venv
        sys.path.append(str(ASYNCSSH_DIR))
    import asyncio

    try:
        import asyncssh
    except ImportError:
        raise SystemExit("the asyncssh variant needs asyncssh: run bench/setup_peers.sh first") from None

    user = host.users[0]
    known = asyncssh.import_known_hosts(f"[127.0.0.1]:{host.sshd.port} {host.sshd.host_key}\n")
    key = asyncssh.import_private_key(host.key)

    async def go() -> list[float]:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            conn = await asyncssh.connect("127.0.0.1", host.sshd.port, username=user.name, known_hosts=known,
                                          client_keys=[key], agent_path=None, config=None)
            try:
                result = await conn.run("echo ok", timeout=10)
            finally:
                conn.close()
                await conn.wait_closed()
            if result.stdout != "ok\n":
                raise RuntimeError(f"unexpected output {result.stdout!r}")
            times.append(time.perf_counter() - t0)
        return times

    return asyncio.run(go())


VARIANTS = {"plain": paramiko_logins(plain_socket), "nodelay": paramiko_logins(nodelay_socket),
            "product": paramiko_logins(PRODUCT_SOCKET), "asyncssh": asyncssh_logins}


def timed(host: BenchHost, name: str, n: int) -> tuple[list[float], float]:
    """(each login's seconds, this process's CPU seconds per login)."""
    cpu0 = time.process_time()
    times = VARIANTS[name](host, n)
    return times, (time.process_time() - cpu0) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--logins", type=int, default=40)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--variants", default="plain,nodelay,product")
    args = p.parse_args()
    variants = args.variants.split(",")
    print("machine:", json.dumps(machine_facts()))
    print("command:", command_line())
    rows = []
    with BenchHost(n_users=1, big_mb=1) as host:
        for name in variants:  # warm up each: sshd's first re-exec, page cache, imports
            timed(host, name, 3)
        for rnd in range(args.rounds):
            for name in variants:
                times, cpu = timed(host, name, args.logins)
                rows.append((name, rnd + 1, times, cpu, load()))
    print("| variant | round | login + one command p50 ms | mean | p90 | client CPU ms per login | load |")
    print("|---|---|---|---|---|---|---|")
    for name, rnd, times, cpu, at in rows:
        print(f"| {name} | {rnd} | {pct(times, 50) * 1000:.1f} | {statistics.mean(times) * 1000:.1f} | "
              f"{pct(times, 90) * 1000:.1f} | {cpu * 1000:.1f} | {at} |")


if __name__ == "__main__":
    main()
