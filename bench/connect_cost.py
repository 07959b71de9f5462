"""
What one terminal connect costs the web server: one expert opens a terminal, waits for the
prompt and closes it, N times in a row (a reload, over and over), on one uvicorn worker.

    sudo .venv/bin/python bench/connect_cost.py [--n 300] [--json out.json]

Prints, per connect (with its close): the web worker's CPU ms (user + system), PostgreSQL
transactions on the scratch database (each of the app's queries outside a transaction is one,
a health check included), Redis commands (the server's count, all databases: keep the machine
otherwise idle), and the time to the prompt (p50 / p90). At N = 200 experts logging in at once the web server's CPU per connect is as
large a share of the two cores as sshd's (bench/RESULTS.md), so this is the figure to watch.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import PROMPT, BenchHost, command_line, cpu_seconds, load, machine_facts, pct  # noqa: E402


def _transactions(database_url: str) -> int:
    import psycopg

    head, _, name = database_url.rpartition("/")
    with psycopg.connect(f"{head}/postgres", autocommit=True) as conn:
        row = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                           [name]).fetchone()
    return int(row[0]) if row else 0


def _redis_commands(redis_url: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


async def measure(args) -> dict:
    from _baseliner import BaselinerTarget

    with BenchHost(n_users=1, big_mb=1) as host:
        target = BaselinerTarget(host)
        target.start()
        try:
            env = target.app.env

            async def once(name: str) -> float:
                t0 = time.monotonic()
                s = await target.session(0, name=name)
                await s.wait_for(PROMPT, 0, 30)
                took = time.monotonic() - t0
                await s.close()
                return took

            for i in range(5):  # warm up: imports, pools, the tmux sessions exist
                await once(f"c{i}")
            await asyncio.sleep(1.0)  # the last close's database write is done
            pids = target.bridge_pids([])
            cpu0, tx0, rc0 = cpu_seconds(pids), _transactions(env["DATABASE_URL"]), _redis_commands(env["REDIS_URL"])
            times = [await once(f"c{i % 5}") for i in range(args.n)]
            await asyncio.sleep(1.0)
            cpu1, tx1, rc1 = cpu_seconds(pids), _transactions(env["DATABASE_URL"]), _redis_commands(env["REDIS_URL"])
        finally:
            target.stop()
    # The statistics collector counts a transaction once its backend reports it (at most a
    # second later): the sleep above lets the last ones in.
    return {
        "n": args.n, "worker_cpu_ms_per_connect": (cpu1 - cpu0) / args.n * 1000,
        "pg_transactions_per_connect": (tx1 - tx0) / args.n, "redis_commands_per_connect": (rc1 - rc0) / args.n,
        "prompt_p50_ms": pct(times, 50) * 1000, "prompt_p90_ms": pct(times, 90) * 1000, "load": load(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=300, help="connects to time (after 5 to warm up)")
    p.add_argument("--json")
    args = p.parse_args()
    print("machine:", json.dumps(machine_facts()))
    print("command:", command_line())
    row = asyncio.run(measure(args))
    print(json.dumps(row))
    print()
    print("| connects | web worker CPU ms / connect | PostgreSQL transactions / connect | Redis commands / connect | prompt p50 ms | p90 ms | load |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {row['n']} | {row['worker_cpu_ms_per_connect']:.1f} | {row['pg_transactions_per_connect']:.1f} | "
          f"{row['redis_commands_per_connect']:.1f} | {row['prompt_p50_ms']:.1f} | {row['prompt_p90_ms']:.1f} | {row['load']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_facts(), "command": command_line(), "row": row}, indent=1))


if __name__ == "__main__":
    main()
