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

    sudo .venv/bin/python bench/ssh_connect.py [--logins 40] [--rounds 2] [--variants plain,nodelay,product]
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

from _harness import BenchHost, command_line, load, machine_facts, pct  # noqa: E402

from provisioning import ssh  # noqa: E402

PRODUCT_SOCKET = ssh._open_socket


def plain_socket(address: str, port: int, timeout: float) -> socket.socket:
    return socket.create_connection((address, port), timeout=timeout)


def nodelay_socket(address: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection((address, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


VARIANTS = {"plain": plain_socket, "nodelay": nodelay_socket, "product": PRODUCT_SOCKET}


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
        logins(host, 3)  # warm up: sshd's first re-exec, page cache
        for rnd in range(args.rounds):
            for name in variants:
                ssh._open_socket = VARIANTS[name]
                try:
                    times = logins(host, args.logins)
                finally:
                    ssh._open_socket = PRODUCT_SOCKET
                rows.append((name, rnd + 1, times, load()))
    print("| socket | round | login + one command p50 ms | mean | p90 | load |")
    print("|---|---|---|---|---|---|")
    for name, rnd, times, at in rows:
        print(f"| {name} | {rnd} | {pct(times, 50) * 1000:.1f} | {statistics.mean(times) * 1000:.1f} | "
              f"{pct(times, 90) * 1000:.1f} | {at} |")


if __name__ == "__main__":
    main()
