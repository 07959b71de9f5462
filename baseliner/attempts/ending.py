"""
The end of an attempt: the steps that run after the clock stops, in order.

    close_terminals  terminals close with a message; the expert is locked out of the machine
    archive          the expert's home as tar.gz (caches over a size limit left out) with a
                     manifest of sizes and SHA-256s, under settings.ARCHIVES_DIR
    final_scoring    for environments aggregated by the final submission: one last scoring run
    final_result     the score that counts (best or last) is fixed on the attempt
    teardown         the machine is given back

Each step is idempotent and recorded in ``Attempt.end_steps``::

    {"archive": {"status": "done", "tries": 1, "at": "...", "detail": "...", "error": "", "data": {...}}, ...}

status is pending, done, skipped (nothing to do, e.g. no machine), failed (``error`` says why;
retried by the sweeper up to MAX_TRIES) or waiting (teardown holds while an earlier step that
needs the machine may still succeed). A failed step never skips the others; once no step can
make progress ``end_steps_finished_at`` is set. Staff see all of it in the attempt's admin page
and can run the steps again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import secrets
import shlex
import tarfile
import time
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from baseliner.web.events import attempt_event

from . import clock, machine_guard
from .models import Attempt

log = logging.getLogger(__name__)

STEPS = ("close_terminals", "archive", "final_scoring", "final_result", "teardown")
MACHINE_STEPS = ("archive", "final_scoring")
MAX_TRIES = 5
TRIES_PER_RUN = 2
RETRY_PAUSE_SECONDS = 2.0
RUNNING_LOCK_SECONDS = 1800  # refreshed before each step

# Folders left out of the archive when bigger than ARCHIVE_CACHE_LIMIT_MB (model weights,
# compiler caches: large, reproducible, not the expert's solution).
CACHE_DIR_NAMES = (".cache", "__pycache__", ".triton", ".nv", ".npm", "node_modules", ".local/share/Trash",
                   ".ipython", ".torch", ".keras", "wandb", ".conda/pkgs", ".venv", "venv")
DONE_STATUSES = ("done", "skipped")


class StepSkipped(Exception):
    """The step has nothing to do; str() says why."""


def end_steps_initial() -> dict:
    return {name: {"status": "pending", "tries": 0} for name in STEPS}


def _setting(name: str, default):
    return getattr(settings, name, default)


# --- the runner ---------------------------------------------------------------------------
def attempt_end_steps_run(*, attempt_id: int, force: bool = False) -> dict:
    """Run every end step that is not done yet (the Celery task's body). Safe to run twice
    and concurrently: a second runner finds the lock taken and returns."""
    lock = f"baseliner:end-steps-running:{attempt_id}"
    if not cache.add(lock, "1", timeout=RUNNING_LOCK_SECONDS):
        log.info("end steps of attempt %s are already running", attempt_id)
        return {}
    try:
        return _run(attempt_id, force=force, lock=lock)
    finally:
        cache.delete(lock)
        cache.delete(f"baseliner:end-steps-queued:{attempt_id}")


def _run(attempt_id: int, *, force: bool, lock: str) -> dict:
    attempt = Attempt.objects.select_related("environment").filter(pk=attempt_id).first()
    if attempt is None or attempt.ended_at is None:
        return {}
    steps = {**end_steps_initial(), **(attempt.end_steps or {})}
    for name in STEPS:
        cache.touch(lock, RUNNING_LOCK_SECONDS)
        record = steps[name]
        if record.get("status") in DONE_STATUSES:
            continue
        if record.get("status") == "failed" and record.get("tries", 0) >= MAX_TRIES and not force:
            continue
        if name == "teardown" and _machine_work_may_still_succeed(steps, force=force):
            record.update(status="waiting", detail="waiting for the archive or final scoring before giving the machine back")
            _save_step(attempt_id, name, record)
            continue
        for attempt_no in range(TRIES_PER_RUN):
            record = _run_step(attempt_id, name, record)
            steps[name] = record
            if record["status"] in DONE_STATUSES or record["tries"] >= MAX_TRIES:
                break
            time.sleep(RETRY_PAUSE_SECONDS)
    return _finish(attempt_id)


def _machine_work_may_still_succeed(steps: dict, *, force: bool) -> bool:
    for name in MACHINE_STEPS:
        status, tries = steps[name].get("status"), steps[name].get("tries", 0)
        if status == "failed" and tries < MAX_TRIES and not force:
            return True
    return False


def _run_step(attempt_id: int, name: str, record: dict) -> dict:
    attempt = Attempt.objects.select_related("environment").get(pk=attempt_id)
    record = {**record, "tries": record.get("tries", 0) + 1, "at": clock.now().isoformat()}
    try:
        outcome = STEP_FUNCTIONS[name](attempt)
    except StepSkipped as why:
        record.update(status="skipped", detail=str(why), error="")
    except Exception as exc:  # recorded for staff; the other steps go on
        log.warning("attempt %s: end step %s failed (try %s): %s", attempt_id, name, record["tries"], exc, exc_info=True)
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
    else:
        detail, data = outcome if isinstance(outcome, tuple) else (outcome, None)
        record.update(status="done", detail=str(detail or ""), error="")
        if data is not None:
            record["data"] = data
    _save_step(attempt_id, name, record)
    return record


def _save_step(attempt_id: int, name: str, record: dict) -> None:
    with transaction.atomic():
        attempt = Attempt.objects.select_for_update().get(pk=attempt_id)
        attempt.end_steps = {**(attempt.end_steps or {}), name: record}
        attempt.save(update_fields=["end_steps"])
        attempt_event(attempt_id, "end_step", {"step": name, "status": record["status"]})


def _finish(attempt_id: int) -> dict:
    with transaction.atomic():
        attempt = Attempt.objects.select_for_update().get(pk=attempt_id)
        steps = {**end_steps_initial(), **(attempt.end_steps or {})}
        settled = all(
            s.get("status") in DONE_STATUSES or (s.get("status") == "failed" and s.get("tries", 0) >= MAX_TRIES)
            for s in steps.values()
        )
        if settled and attempt.end_steps_finished_at is None:
            attempt.end_steps_finished_at = clock.now()
            attempt.save(update_fields=["end_steps_finished_at"])
        return steps


def attempt_end_steps_restart(*, attempt: Attempt, actor) -> None:
    """Staff: run the end steps again, failed ones included (their tries start over)."""
    from baseliner.audit.services import audit_record

    from .tasks import attempt_end_steps_task

    with transaction.atomic():
        attempt = Attempt.objects.select_for_update().get(pk=attempt.pk)
        steps = {**end_steps_initial(), **(attempt.end_steps or {})}
        for record in steps.values():
            if record.get("status") not in DONE_STATUSES:
                record["tries"] = 0
        attempt.end_steps, attempt.end_steps_finished_at = steps, None
        attempt.save(update_fields=["end_steps", "end_steps_finished_at"])
        audit_record(action="attempt.end_steps_restart", actor=actor, attempt=attempt)
        transaction.on_commit(lambda: attempt_end_steps_task.delay(attempt.pk))


# --- the steps ------------------------------------------------------------------------------
def _lease(attempt):
    try:
        from baseliner.machines.services import lease_for_attempt
    except ImportError:
        return None
    return lease_for_attempt(attempt=attempt)


def step_close_terminals(attempt: Attempt):
    from .lifecycle import ended_payload

    attempt_event(attempt.pk, "ended", ended_payload(attempt))
    result = machine_guard.machine_sync_clock(attempt=attempt)
    return "terminals told to close; machine: " + result


def step_archive(attempt: Attempt):
    lease = _lease(attempt)
    if lease is None or lease.state not in ("ready", "unhealthy"):
        raise StepSkipped("no machine to archive (it was never ready, or is already gone)")
    return archive_home(attempt=attempt, lease=lease)


def step_final_scoring(attempt: Attempt):
    if attempt.environment.aggregation != "last":
        raise StepSkipped("the best score counts in this environment: no final scoring")
    if attempt.started_at is None:
        raise StepSkipped("the attempt never started")
    if _lease(attempt) is None:
        raise StepSkipped("no machine to score on")
    return final_scoring_run(attempt=attempt)


def step_final_result(attempt: Attempt):
    entry = counting_entry(attempt=attempt)
    with transaction.atomic():
        locked = Attempt.objects.select_for_update().get(pk=attempt.pk)
        locked.final_score = entry
        locked.final_normalized_score = entry.normalized_score if entry is not None else None
        locked.save(update_fields=["final_score", "final_normalized_score"])
    if entry is None:
        return "no score counts (no valid scoring run)", {"entry": None}
    return f"score #{entry.sequence} counts: normalized {entry.normalized_score}", {"entry": entry.pk, "sequence": entry.sequence}


def step_teardown(attempt: Attempt):
    lease = _lease(attempt)
    if lease is None:
        raise StepSkipped("no machine to give back")
    from baseliner.machines.services import lease_teardown

    lease = lease_teardown(lease=lease, reason=f"attempt {attempt.pk} ended")
    if lease.state not in ("torn_down", "failed"):
        raise RuntimeError(lease.error or f"the machine is still {lease.state}")
    return f"lease {lease.pk} torn down"


STEP_FUNCTIONS = {
    "close_terminals": step_close_terminals,
    "archive": step_archive,
    "final_scoring": step_final_scoring,
    "final_result": step_final_result,
    "teardown": step_teardown,
}


# --- scoring (issue 5's services, reached through these two functions) ------------------------
def final_scoring_run(*, attempt: Attempt):
    """One final scoring run of the submission as it stands, recorded in the score log with
    trigger "final". Idempotent: an existing final entry is reused."""
    from baseliner.scoring.models import ScoreEntry

    existing = ScoreEntry.objects.filter(attempt=attempt, trigger=ScoreEntry.Trigger.FINAL).order_by("-sequence").first()
    if existing is not None:
        return f"final score #{existing.sequence} already recorded", {"entry": existing.pk}
    try:
        from baseliner.scoring.services import score_request, score_run_process
    except ImportError:
        raise StepSkipped("final scoring is not available in this installation") from None
    from baseliner.scoring.models import ScoreRun

    run = ScoreRun.objects.filter(attempt=attempt, trigger=ScoreEntry.Trigger.FINAL).order_by("-pk").first()
    if run is None:
        run, _ = score_request(attempt=attempt, trigger=ScoreEntry.Trigger.FINAL)
    # Wait for runs queued before it, then run it here (the queued task finds it done).
    deadline = time.monotonic() + attempt.environment.scoring_timeout_seconds + 120
    while time.monotonic() < deadline:
        entry = score_run_process(run_id=run.pk)
        run.refresh_from_db()
        if run.entry_id:
            entry = run.entry
            return f"final score #{entry.sequence}: {entry.get_status_display()}", {"entry": entry.pk}
        time.sleep(1)
    raise RuntimeError("the final scoring run did not finish in time")


def counting_entry(*, attempt: Attempt):
    """The score entry that counts for the attempt (best, or last for ``last`` environments)."""
    try:
        from baseliner.scoring.services import score_counting_entry
    except ImportError:
        score_counting_entry = None
    if score_counting_entry is not None:
        return score_counting_entry(attempt=attempt)
    from baseliner.scoring.models import ScoreEntry
    from baseliner.scoring.normalization import is_better

    entries = list(ScoreEntry.objects.filter(attempt=attempt).order_by("sequence"))
    if attempt.environment.aggregation == "last":
        for entry in reversed(entries):
            if entry.status != ScoreEntry.Status.ERROR:
                return entry if entry.status == ScoreEntry.Status.OK else None
        return None
    best = None
    for entry in entries:
        if entry.status == ScoreEntry.Status.OK and entry.raw_score is not None:
            if best is None or is_better(entry.raw_score, best.raw_score, direction=attempt.environment.direction):
                best = entry
    return best


# --- the archive --------------------------------------------------------------------------
def archive_dir() -> Path:
    path = Path(settings.ARCHIVES_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cache_dirs_command(home: str, limit_kb: int) -> str:
    names = " -o ".join(f"-path {shlex.quote('./' + n)} -o -path {shlex.quote('*/' + n)}" for n in CACHE_DIR_NAMES)
    return (
        f"cd {shlex.quote(home)} && find . -xdev -type d \\( {names} \\) -prune -print 2>/dev/null | "
        f"while IFS= read -r d; do k=$(du -sk -- \"$d\" 2>/dev/null | cut -f1); "
        f"[ \"${{k:-0}}\" -gt {int(limit_kb)} ] && printf '%s\\t%s\\n' \"$k\" \"$d\"; done; true"
    )


def archive_home(*, attempt: Attempt, lease) -> tuple[str, dict]:
    """Stream the expert's home from the machine as tar.gz into ARCHIVES_DIR, then write
    its manifest (each file's size and SHA-256, and what was left out)."""
    from baseliner.machines.services import lease_client, lease_run

    home = lease.provider_state["home"]
    limit_mb = int(_setting("ARCHIVE_CACHE_LIMIT_MB", 100))
    max_bytes = int(_setting("ARCHIVE_MAX_MB", 4096)) * 1024 * 1024
    listing = lease_run(lease=lease, command=_cache_dirs_command(home, limit_mb * 1024), timeout=300)
    if not listing.ok:
        raise RuntimeError(f"listing caches failed: {listing.stderr.strip()[:500]}")
    excluded = []
    for line in listing.stdout.splitlines():
        kb, _, path = line.partition("\t")
        if path.startswith("./") and kb.isdigit():
            excluded.append({"path": path[2:], "kb": int(kb)})
    excludes = " ".join(f"--exclude={shlex.quote('./' + e['path'])}" for e in excluded)
    command = f"tar -C {shlex.quote(home)} --anchored {excludes} --warning=no-file-ignored -czf - . "

    name = f"attempt-{attempt.pk}-{secrets.token_hex(4)}"
    target = archive_dir() / f"{name}.tar.gz"
    partial = target.with_suffix(".partial")
    client = lease_client(lease=lease, as_admin=True)
    digest = hashlib.sha256()
    size = 0
    try:
        chan = client.get_transport().open_session(timeout=30)
        chan.settimeout(600)
        chan.exec_command(command)
        stderr = bytearray()
        with open(partial, "wb") as out:
            while True:
                data = chan.recv(1 << 16)
                if not data:
                    break
                size += len(data)
                if size > max_bytes:
                    raise RuntimeError(f"the home folder is larger than the archive limit ({max_bytes >> 20} MB compressed)")
                digest.update(data)
                out.write(data)
                while chan.recv_stderr_ready():
                    stderr += chan.recv_stderr(65536)[: 65536]
        status = chan.recv_exit_status()
        while chan.recv_stderr_ready():
            stderr += chan.recv_stderr(65536)
        chan.close()
    except Exception:
        partial.unlink(missing_ok=True)
        raise
    finally:
        client.close()
    # GNU tar: 1 means "some files changed while read" (the archive is still good).
    if status not in (0, 1):
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"tar exited {status}: {bytes(stderr).decode('utf-8', 'replace').strip()[:500]}")
    partial.rename(target)
    manifest = build_manifest(target, attempt=attempt, home=home, excluded=excluded)
    manifest["archive"].update(size=size, sha256=digest.hexdigest())
    manifest_path = archive_dir() / f"{name}.manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=1))
    data = {
        "archive": target.name, "manifest": manifest_path.name, "size": size, "sha256": digest.hexdigest(),
        "files": len(manifest["files"]), "excluded": excluded,
    }
    return f"{len(manifest['files'])} files, {size} bytes compressed", data


def build_manifest(path: Path, *, attempt: Attempt, home: str, excluded: list) -> dict:
    files = []
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            entry = {"path": member.name.removeprefix("./"), "mode": oct(member.mode), "mtime": member.mtime}
            if member.isfile():
                h = hashlib.sha256()
                f = tar.extractfile(member)
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
                entry.update(type="file", size=member.size, sha256=h.hexdigest())
            elif member.isdir():
                if member.name in (".", "./"):
                    continue
                entry["type"] = "dir"
            elif member.issym():
                entry.update(type="symlink", target=member.linkname)
            else:
                entry["type"] = "other"
            files.append(entry)
    return {
        "schema": 1,
        "attempt": attempt.pk,
        "home": home,
        "created": clock.now().isoformat(),
        "archive": {"name": path.name},
        "cache_limit_mb": int(_setting("ARCHIVE_CACHE_LIMIT_MB", 100)),
        "excluded": excluded,
        "files": files,
        "total_bytes": sum(f.get("size", 0) for f in files),
    }


def archive_paths(attempt: Attempt) -> tuple[Path, Path] | None:
    """(archive, manifest) of a finished archive step, or None."""
    data = ((attempt.end_steps or {}).get("archive") or {}).get("data") or {}
    if not data.get("archive"):
        return None
    base = archive_dir()
    archive, manifest = base / Path(data["archive"]).name, base / Path(data["manifest"]).name
    return (archive, manifest) if archive.exists() else None
