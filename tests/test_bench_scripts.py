"""Smoke tests of the benchmarks in bench/: each script runs as a person runs it (its own command
line, a subprocess) with tiny parameters, and must exit 0, print no traceback, print the figures
bench/RESULTS.md is made of with plausible values, and leave nothing behind (no process, no
scratch database). Nothing else runs these scripts, so without this a change to the app or to
bench/_harness.py could break a benchmark unnoticed.

Only the contenders scripts/setup.sh provides (OpenSSH, paramiko, baseliner): webssh and asyncssh
come from bench/setup_peers.sh, which CI does not run. The benchmarks name their scratch databases
after DATABASE_URL's (``<name>_bench``, ``<name>_bench_export``); here that name gets a ``_smoke``
suffix, so neither the session's test database nor a benchmark run by hand meanwhile is touched.
"""
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from baseliner.devtools.processes import ROOT

pytestmark = pytest.mark.slow

BENCH = ROOT / "bench"
DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/baseliner")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9")
PREFIX_SUM_PYTHON = ROOT / ".envs" / "prefix_sum" / "bin" / "python"
STALL_MS = 5000  # the benchmarks' wait for an echo (concurrency.py's stall)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the benchmark creates Unix users (bench/_harness.BenchHost)")

# Runs the benchmark as a child subreaper, so that whatever it started and left running (a
# server in a session of its own, a tmux server that daemonized, a bench user's shell) is
# re-parented here once its parent is gone: listed, then killed.
REAPER = r"""
import ctypes, json, os, signal, subprocess, sys, time
import psutil

assert ctypes.CDLL(None).prctl(36, 1) == 0  # PR_SET_CHILD_SUBREAPER
child = subprocess.Popen(sys.argv[1:])
signal.signal(signal.SIGTERM, lambda *_: child.terminate())  # the benchmark's own clean-up runs
rc = child.wait()

def alive():
    procs = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                procs.append(p)
        except psutil.Error:
            pass
    return procs

deadline = time.monotonic() + 5  # a process killed just before the benchmark exited may still be going
while alive() and time.monotonic() < deadline:
    time.sleep(0.1)
left = alive()
if left:
    print("LEFT BEHIND:", json.dumps([" ".join(p.cmdline())[:200] for p in left]), flush=True)
    for p in left:
        try:
            p.kill()
        except psutil.Error:
            pass
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
sys.exit(rc)
"""


def bench_env(**extra) -> dict:
    """This session's environment for a benchmark, less pytest's Django settings, with the
    database named as in the module's docstring and the session's Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BENCH_", "PYTEST_"))}
    env.update(DATABASE_URL=f"{DATABASE_URL.split('?')[0]}_smoke", REDIS_URL=REDIS_URL, PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_bench(script: str, *args, timeout: float = 120, python=sys.executable, env: dict | None = None) -> str:
    """Run ``bench/<script>`` to the end; its output (stdout and stderr), once it has exited 0
    with no traceback and left no process behind."""
    cmd = [sys.executable, "-c", REAPER, str(python), f"bench/{script}", *map(str, args)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env or bench_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        pytest.fail(f"{script} ran past {timeout} s:\n{out[-6000:]}")
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{out[-6000:]}"
    assert "Traceback (most recent call last)" not in out, out[-8000:]
    assert "LEFT BEHIND" not in out, out[-3000:]
    return out


def json_rows(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def table(out: str) -> list[dict]:
    """The rows of the Markdown table in ``out``, keyed by its header."""
    lines = [line.strip().strip("|").split("|") for line in out.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0]]
    return [dict(zip(header, (cell.strip() for cell in line))) for line in lines[2:]]


def positive(row: dict, *keys: str, below: float = math.inf) -> None:
    """Each of ``keys`` is a finite number in (0, below)."""
    for key in keys:
        value = float(row[key])
        assert math.isfinite(value) and 0 < value < below, f"{key} = {row[key]!r} in {row}"


def drop_scratch_databases() -> list[str]:
    """Drop the benchmarks' scratch databases (see the module's docstring); the names of those found."""
    import psycopg

    head, _, name = DATABASE_URL.split("?")[0].rpartition("/")
    with psycopg.connect(f"{head}/postgres", autocommit=True) as conn:
        found = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                            [f"{name}\\_smoke%"]).fetchall()]
        for db in found:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    return found


@pytest.fixture(autouse=True)
def leaves_nothing(monkeypatch):
    """The benchmark's temporary files go to a folder of the test's own (as traversable as /tmp
    is: the bench's Unix users read files there) that must be empty afterwards; no scratch
    database may be left. Whatever was left is removed, so that the next test starts clean."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-smoke-"))
    tmp.chmod(0o755)
    monkeypatch.setenv("TMPDIR", str(tmp))
    yield
    files = sorted(p.name for p in tmp.iterdir())
    shutil.rmtree(tmp, ignore_errors=True)
    databases = drop_scratch_databases()
    assert not databases, f"a benchmark left its scratch database: {databases}"
    assert not files, f"a benchmark left temporary files: {files}"


@needs_root
def test_peers_measures_openssh_paramiko_and_baseliner():
    out = run_bench("peers.py", "--targets", "openssh-tmux,paramiko-tmux,baseliner", "--big-mb", 2, "--echo", 20,
                    "--busy-echo", 8, "--sessions", 2, "--reconnects", 1, timeout=180)
    rows = json_rows(out)
    assert [r["target"] for r in rows] == ["direct OpenSSH + tmux", "direct paramiko + tmux", "baseliner"], rows
    for row in rows:
        assert "error" not in row, row
        positive(row, "connect_s", "reconnect_s", "ctrl_c_s", below=30)
        positive(row, "echo_p50_ms", "busy_echo_p50_ms", below=1000)
        positive(row, "echo_p99_ms", "busy_echo_p99_ms", below=STALL_MS)
        assert row["echo_p99_ms"] >= row["echo_p50_ms"], row
        positive(row, "cat_MBps", "wire_MB")
        assert math.isfinite(row["idle_MB_per_session"]) and math.isfinite(row["busy_MB_per_session"]), row
    shown = table(out)
    assert [r["contender"] for r in shown] == [r["target"] for r in rows]
    assert all("-" not in r.values() for r in shown), shown  # every figure is in the table


@needs_root
def test_concurrency_and_its_reconnect_storm_lose_no_expert():
    out = run_bench("concurrency.py", "--target", "baseliner", "--workers", 2, "--n", 10, "--duration", 3, timeout=150)
    [row] = json_rows(out)
    assert row["target"] == "baseliner, 2 uvicorn workers" and row["n"] == 10, row
    assert row["logins_lost"] == row["logins_failed"] == 0, row
    assert row["stalls"] == row["burst_failures"] == 0 and row["bursts"] >= 1, row
    assert row["storm_lost"] == row["storm_failed"] == row["storm_stalls"] == 0, row
    assert row["recording"] == "yes (10 terminals)" and row["errors"] == [], row
    assert row["keys"] > 0, row
    positive(row, "login_last_s", "storm_last_s", "restart_s", below=60)
    positive(row, "echo_p50_ms", "echo_p99_ms", "storm_echo_p99_ms", below=STALL_MS)
    positive(row, "server_rss_MB")
    [shown] = table(out)
    assert shown["recording complete"] == row["recording"] and "-" not in shown.values(), shown


@needs_root
def test_echo_legs_splits_the_echoes_of_a_concurrency_run(tmp_path):
    legs = tmp_path / "legs"
    out = run_bench("concurrency.py", "--target", "baseliner", "--n", 2, "--duration", 2, "--no-storm", timeout=120,
                    env=bench_env(ECHO_LEGS=str(legs), PYTHONPATH="bench/echo_legs"))
    [row] = json_rows(out)
    assert row["stalls"] == row["logins_failed"] == 0 and row["keys"] > 0, row
    printed = run_bench("echo_legs/sitecustomize.py", legs, timeout=30)
    # one block per web worker that timed anything: here the one uvicorn process
    [block] = re.findall(r"^\d+\.json: .*?(?=^\d+\.json|\Z)", printed, re.M | re.S)
    terminals, timed = map(int, re.search(r"(\d+) terminals opened; (\d+) keystrokes timed", block).groups())
    assert terminals == 2 and 0 < timed <= row["keys"], block
    for leg in ("input", "machine", "loop", "server_total"):
        p50 = float(re.search(rf"{leg}: p50 (\S+) ms", block).group(1))
        assert 0 <= p50 < STALL_MS, block
    assert re.search(r"event loop lag \([1-9]\d* ticks", block), block


def test_ws_floor_times_every_row():
    # (the server's CPU is read in 10 ms ticks: enough keys and MB that no figure rounds to 0;
    # uvicorn streams 30 MB in under 10 ms of CPU)
    out = run_bench("ws_floor.py", "--keys", 400, "--rounds", 1, "--stream-mb", 300)
    rows = table(out)
    assert [r["path"] for r in rows] == [
        "WebSocket round trip through the ASGI server, nothing behind it",
        "... through a Channels consumer, Channels' stock message loop",
        "... Channels' stock loop, dispatch without close_old_connections",
        "... through a Channels consumer, baseliner's DirectDispatchConsumer"], rows
    for row in rows:
        assert row["server"] == "uvicorn", row
        positive(row, "echo p50 ms", below=1000)
        positive(row, "echo p99 ms", below=STALL_MS)
        assert float(row["echo p99 ms"]) >= float(row["echo p50 ms"]), row
        positive(row, "server CPU us per round trip", below=1_000_000)
    # the stream (16 KB frames, every byte counted by the client) on the bare app and the terminal's consumer
    for row in (rows[0], rows[3]):
        positive(row, "stream MB/s", "server CPU s/MB")
    assert rows[1]["stream MB/s"] == rows[2]["stream MB/s"] == "-", rows


def test_ws_floor_compares_asgi_servers():
    # uvicorn's rows are the test above; daphne is in the app's venv (Channels), granian and
    # hypercorn come from bench/setup_peers.sh
    out = run_bench("ws_floor.py", "--keys", 400, "--rounds", 1, "--stream-mb", 300, "--paths", "/,/direct",
                    "--servers", "daphne")
    rows = table(out)
    assert [(r["server"], r["uvicorn --ws"]) for r in rows] == [("daphne", "-"), ("daphne", "-")], rows
    for row in rows:
        positive(row, "echo p50 ms", "server CPU us per round trip", "stream MB/s", "server CPU s/MB")


def test_gc_log_records_the_collections_of_a_benchmark(tmp_path):
    log = tmp_path / "gc"
    run_bench("ws_floor.py", "--keys", 20, "--rounds", 1, "--paths", "/direct", "--stream-mb", 0,
              env=bench_env(GC_LOG=str(log), PYTHONPATH="bench/gc_log"))
    printed = run_bench("gc_log/sitecustomize.py", log, timeout=30)
    # (ws_floor.py gives its servers a PYTHONPATH of their own: only the benchmark's process logs)
    processes = re.findall(r"^\d+\.json: (.*)\n  gen 0: (\d+) collections", printed, re.M)
    assert any("ws_floor.py" in argv and int(n) > 0 for argv, n in processes), printed


def test_tmux_pane_times_every_row():
    out = run_bench("tmux_pane.py", "--mb", 2, "--runs", 1, "--conf-extra", "set -g history-limit 0")
    rows = table(out)
    assert [r["120x40 pane, 2 MB"] for r in rows] == [
        "bare pty, no tmux (reference)", "tmux pane, no client attached", "tmux pane, one client attached (drained)",
        "tmux pane, no client, conf + `set -g history-limit 0`"], rows
    for row in rows:
        positive(row, "cat s", below=60)
        positive(row, "MB/s")
    positive(rows[2], "client wire MB")


@needs_root
def test_ssh_connect_times_every_socket_variant():
    # paramiko's logins only: the asyncssh variant needs bench/setup_peers.sh
    out = run_bench("ssh_connect.py", "--logins", 3, "--rounds", 1)
    rows = table(out)
    assert [r["variant"] for r in rows] == ["plain", "nodelay", "product"], rows
    for row in rows:
        positive(row, "login + one command p50 ms", "mean", "p90", below=10_000)
        positive(row, "client CPU ms per login", below=10_000)


def test_export_at_two_sizes():
    out = run_bench("export.py", "--attempts", "2,3", "--cast-mb", 0.05, "--commands", 5)
    rows = json_rows(out)
    assert [r["attempts"] for r in rows] == [2, 3], rows
    for row in rows:
        assert row["rc"] == 0 and any(line.startswith("Export ") for line in row["output"]), row
        positive(row, "wall_s", "cpu_s", "peak_rss_MB", "bundle_MB")
    assert [r["exit"] for r in table(out)] == ["0", "0"]


@pytest.mark.parametrize("kind", ["synthetic", "mixed"])
def test_scrub_measures_both_kinds(kind):
    out = run_bench("scrub.py", "--cast-mb", 0.05, "--repeat", 1, "--kind", kind)
    [row] = json_rows(out)
    assert row["kind"] == kind and re.fullmatch(r"[0-9a-f]{16}", row["output_sha256"]), row
    positive(row, "output_MB", "export_cpu_s", "scrub_cpu_s", "scrub_MB_per_cpu_s", "export_MB_per_cpu_s")
    assert row["unscrubbed_cpu_s"] <= row["export_cpu_s"], row


@pytest.mark.skipif(not PREFIX_SUM_PYTHON.exists(), reason=f"{PREFIX_SUM_PYTHON} (torch, Triton) is missing: "
                    "scripts/setup.sh builds it")
def test_prefix_sum_on_cpu():
    # Needs no GPU: on CPU the scorer falls back to a small N (figures not meaningful, but the
    # script's whole path runs: each solution through the real scorer, the table, the constants).
    out = run_bench("prefix_sum.py", "--runs", 1, "--n", 2000, python=PREFIX_SUM_PYTHON, timeout=180)
    rows = {r["solution"]: r for r in table(out)}
    assert rows["starting"]["result"] == rows["reference"]["result"] == "correct", rows
    positive(rows["starting"], "median ms/call")
    positive(rows["reference"], "median ms/call")
    assert rows["wrong"]["result"].startswith("rejected: Wrong answer at index"), rows
    assert re.search(r"^environment\.yaml: y_start: -?\d+\.\d+ +y_ref: -?\d+\.\d+", out, re.M), out


@needs_root
@pytest.mark.browser
def test_browser_renders_in_chromium():
    out = run_bench("browser.py", "--targets", "baseliner", "--mb", 1, "--runs", 1, timeout=150)
    [row] = json_rows(out)
    assert row["target"] == "baseliner" and "error" not in row, row
    positive(row, "rendered_MBps", "rendered_s")
    positive(row, "painted_echo_p50_ms", "painted_echo_p99_ms", below=STALL_MS)
    [shown] = table(out)
    assert "error" not in shown["rendered MB/s"], shown


@pytest.mark.parametrize("script", ["run_all.sh", "alternate.sh"])
def test_the_batch_scripts_pass_only_options_the_benchmarks_define(script):
    # They take half an hour and install webssh (bench/setup_peers.sh): checked, not run.
    path = BENCH / script
    subprocess.run(["bash", "-n", str(path)], check=True)
    text = path.read_text()
    benchmarks = set(re.findall(r"bench/(\w+)\.py", text))
    assert benchmarks and all((BENCH / f"{b}.py").exists() for b in benchmarks), benchmarks
    defined = {opt for b in benchmarks
               for opt in re.findall(r"add_argument\(\"(--[\w-]+)\"", (BENCH / f"{b}.py").read_text())}
    used = set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", text))
    assert used and used <= defined, used - defined
