"""
Export cost: `manage.py export_baselines` over many synthetic eight-hour attempts.

    sudo .venv/bin/python bench/export.py [--attempts 100,300,1000] [--cast-mb 2] [--commands 400]

A scratch database (``<DATABASE_URL name>_bench_export``) and recordings folder are filled
directly (bulk inserts: the export is what is measured, not the app's write path) with ended
attempts, each with 27 score entries (3.4 an hour, as in RE-Bench), ``--commands`` logged
commands, clock events, and one asciicast recording of eight hours (``--cast-mb`` of output:
keystroke echo, command output, progress bars redrawn with \\r, score markers). Then the real
command runs as a subprocess at each size, cumulatively (100, then 200 more, ...): wall time
and peak RSS (the child's ru_maxrss from wait4). Memory flat in the number of attempts means
the peak at 1,000 is about the peak at 100. Everything is dropped afterwards.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import ROOT, command_line, load, machine_facts  # noqa: E402

CAST_VARIANTS = 8  # distinct synthetic recordings; attempts hard-link one of them


def scratch_env(var: Path) -> dict:
    import environ

    environ.Env.read_env(ROOT / ".env", overwrite=False)
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/baseliner")
    head, _, name = base.rpartition("/")
    return {
        "DJANGO_SETTINGS_MODULE": "baseliner.settings",
        "DATABASE_URL": f"{head}/{name.split('?')[0]}_bench_export",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "BASELINER_VAR_DIR": str(var),
        "RECORDINGS_DIR": str(var / "recordings"),
        "EXPORTS_DIR": str(var / "exports"),
        "DEBUG": "0",
    }


def synthetic_cast(path: Path, *, size: int, rng: random.Random) -> None:
    """Eight hours of a terminal: typed commands echoed key by key, their output, progress
    bars, a marker at each score. About ``size`` bytes of output."""
    words = ["python", "train.py", "--lr", "3e-4", "nvidia-smi", "ls", "-la", "cat", "solution.py", "git", "diff",
             "score", "vim", "kernel.py", "pytest", "-q", "tail", "-f", "log.txt", "cd", "..", "export", "BATCH=64"]
    header = {"version": 2, "width": 120, "height": 40, "timestamp": 1795400000, "title": "synthetic",
              "env": {"TERM": "xterm-256color", "SHELL": "/bin/bash"}}
    written, t = 0, 0.0
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(header) + "\n")
        while t < 8 * 3600:
            kind = rng.random()
            if kind < 0.6:  # a command typed, echoed key by key, then its output
                cmd = " ".join(rng.choice(words) for _ in range(rng.randint(1, 5)))
                for ch in cmd:
                    t += rng.uniform(0.08, 0.3)
                    f.write(json.dumps([round(t, 6), "i", ch]) + "\n")
                    f.write(json.dumps([round(t + 0.001, 6), "o", ch]) + "\n")
                    written += 1
                lines = [f"step {rng.randint(0, 99999)} loss {rng.random():.4f} lr 3e-4 tokens/s {rng.randint(1000, 90000)}"
                         for _ in range(rng.randint(1, 40))]
                out = "\r\n".join(lines) + "\r\n\x1b]133;A\x07bench$ "
                t += rng.uniform(0.1, 5)
                f.write(json.dumps([round(t, 6), "o", out]) + "\n")
                written += len(out)
            elif kind < 0.9:  # a progress bar redrawn in place
                for i in range(0, 101, 5):
                    t += rng.uniform(0.2, 2)
                    bar = f"\r{i:3d}%|{'#' * (i // 5):<20}| {i * 31}/{3100} [00:{i:02d}<00:{100 - i:02d}]"
                    f.write(json.dumps([round(t, 6), "o", bar]) + "\n")
                    written += len(bar)
            else:
                t += rng.uniform(5, 120)  # thinking
                if rng.random() < 0.2:
                    f.write(json.dumps([round(t, 6), "m", f"score: {rng.random():.3f}"]) + "\n")
            if written >= size:  # fill the rest of the eight hours sparsely
                t = max(t, 8 * 3600 - 1)
        f.write(json.dumps([8 * 3600.0, "o", "exit\r\n"]) + "\n")


def generate(n_total: int, start_index: int, env, args, casts: list[Path], rec_dir: Path, rng: random.Random) -> None:
    """Add attempts ``start_index`` .. ``n_total - 1`` (bulk inserts)."""
    from django.contrib.auth import get_user_model

    from baseliner.attempts.models import Assignment, Attempt, ClockEvent
    from baseliner.attempts.states import EndReason, State
    from baseliner.recording.models import CommandRecord, Recording
    from baseliner.scoring.models import ScoreEntry
    from django.utils import timezone

    User = get_user_model()
    batch = 100
    for lo in range(start_index, n_total, batch):
        hi = min(lo + batch, n_total)
        users = User.objects.bulk_create([User(username=f"bench-export-{i}", email=f"expert{i}@example.org")
                                          for i in range(lo, hi)])
        assignments = Assignment.objects.bulk_create([Assignment(expert=u, environment=env) for u in users])
        base = timezone.now() - timedelta(days=30)
        attempts = []
        for i, (u, a) in enumerate(zip(users, assignments)):
            start = base + timedelta(minutes=lo + i)
            attempts.append(Attempt(assignment=a, expert=u, environment=env, state=State.SURVEYED, end_reason=EndReason.TIMEOUT,
                                    started_at=start, deadline_at=start + timedelta(hours=8), ended_at=start + timedelta(hours=8),
                                    rules_accepted_at=start, time_limit_seconds=8 * 3600))
        attempts = Attempt.objects.bulk_create(attempts)
        scores, commands, clocks, recs = [], [], [], []
        for a in attempts:
            start = a.started_at
            clocks += [ClockEvent(attempt=a, kind=ClockEvent.Kind.START, at=start),
                       ClockEvent(attempt=a, kind=ClockEvent.Kind.END, at=start + timedelta(hours=8))]
            for s in range(27):
                el = (s + 1) * 8 * 3600 / 28
                raw = rng.random()
                scores.append(ScoreEntry(attempt=a, sequence=s + 1, created=start + timedelta(seconds=el + 30),
                                         elapsed_seconds=el, raw_score=raw, normalized_score=raw, status="ok",
                                         message=f"score {raw:.4f}", details={"runtime_s": rng.random() * 10},
                                         trigger="button", scoring_seconds=30.0))
            for c in range(args.commands):
                el = c * 8 * 3600 / args.commands
                commands.append(CommandRecord(attempt=a, terminal="main", started_at=start + timedelta(seconds=el),
                                              elapsed_seconds=el, duration_seconds=rng.random() * 30,
                                              cwd=f"/home/bl{a.pk:010x}/solution",
                                              command=f"python train.py --lr {rng.random():.4f} --run {c}",
                                              exit_status=rng.choice([0, 0, 0, 1])))
            rel = f"attempt-{a.pk}/main-synthetic.cast"
            (rec_dir / f"attempt-{a.pk}").mkdir(parents=True, exist_ok=True)
            os.link(casts[a.pk % len(casts)], rec_dir / rel)
            recs.append(Recording(attempt=a, terminal="main", path=rel, started_at=start,
                                  ended_at=start + timedelta(hours=8), width=120, height=40,
                                  bytes_out=casts[a.pk % len(casts)].stat().st_size))
        ClockEvent.objects.bulk_create(clocks)
        ScoreEntry.objects.bulk_create(scores, batch_size=2000)
        CommandRecord.objects.bulk_create(commands, batch_size=5000)
        Recording.objects.bulk_create(recs)


def run_export(env: dict, profile: str | None = None) -> dict:
    """The real command, as a subprocess; wall time and its peak RSS (wait4's ru_maxrss).
    With ``profile``, under pyinstrument, its text report written to that file."""
    t0 = time.monotonic()
    prefix = ["-m", "pyinstrument", "-r", "text", "--show-all", "-o", profile] if profile else []
    proc = subprocess.Popen([sys.executable, *prefix, "manage.py", "export_baselines"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_MB": usage.ru_maxrss / 1024,
            "rc": proc.returncode, "output": out.decode(errors="replace").strip().splitlines()[:3]}


def main(args) -> None:
    print("machine:", json.dumps(machine_facts()))
    print("command:", command_line())
    sizes = [int(x) for x in args.attempts.split(",")]
    var = Path(tempfile.mkdtemp(prefix="bench-export-"))
    env = {**os.environ, **scratch_env(var)}
    os.environ.update(scratch_env(var))
    sys.path.insert(0, str(ROOT))
    from _baseliner import _create_database, _drop_database

    _create_database(os.environ["DATABASE_URL"])
    rows = []
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        import django

        django.setup()
        from baseliner.catalog.models import Environment

        rng = random.Random(7)
        cast_dir = var / "templates"
        cast_dir.mkdir()
        casts = []
        t0 = time.monotonic()
        for k in range(CAST_VARIANTS):
            p = cast_dir / f"cast{k}.cast"
            synthetic_cast(p, size=int(args.cast_mb * 1e6), rng=rng)
            casts.append(p)
        print(f"synthetic recordings: {CAST_VARIANTS} variants of {casts[0].stat().st_size / 1e6:.1f} MB "
              f"({time.monotonic() - t0:.1f} s)")
        environment = Environment.objects.create(
            slug="bench-export", version=1, content_hash="bench", title="Benchmark", instructions="bench",
            time_limit_seconds=8 * 3600, direction="higher", aggregation="best", y_start=0.0, y_ref=1.0)
        rec_dir = var / "recordings"
        rec_dir.mkdir(exist_ok=True)
        done = 0
        for n in sizes:
            t0 = time.monotonic()
            generate(n, done, environment, args, casts, rec_dir, rng)
            gen_s = time.monotonic() - t0
            done = n
            r = run_export(env, profile=f"{args.profile}.{n}.txt" if args.profile else None)
            bundle = sorted((var / "exports").glob("*.zip"))
            size_mb = bundle[-1].stat().st_size / 1e6 if bundle else float("nan")
            for old in bundle:
                old.unlink()
            row = {"attempts": n, "generate_s": gen_s, **r, "bundle_MB": size_mb, "load": load()}
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        from django.db import connections

        connections.close_all()
        _drop_database(os.environ["DATABASE_URL"])
        shutil.rmtree(var, ignore_errors=True)
    print()
    print("| attempts | export wall s | export CPU s | peak RSS MB | bundle MB | exit | load |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['attempts']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_rss_MB']:.0f} | {r['bundle_MB']:.0f} | "
              f"{r['rc']} | {r['load']} |")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--attempts", default="100,300,1000")
    p.add_argument("--cast-mb", type=float, default=2.0, help="output in each eight-hour recording, MB")
    p.add_argument("--commands", type=int, default=400, help="logged commands per attempt")
    p.add_argument("--profile", help="run the export under pyinstrument; reports go to PROFILE.<n>.txt")
    main(p.parse_args())
