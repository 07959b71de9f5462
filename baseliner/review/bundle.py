"""
The anonymized export bundle.

``export_build(job_id=)`` writes, for the attempts its filters select::

    baseliner-export-<job>/
      manifest.json            schema version, counts, SHA-256 and size of every other file
      README.md                the schema below, as text
      <table>.jsonl / .csv / .parquet   for each table in TABLES
      recordings/<attempt_id>/<n>.cast  asciicast v2, scrubbed

zipped into ``EXPORTS_DIR/baseliner-export-<job>.zip``. It streams: attempts are read with
``.iterator()``, each row is written to the three formats as it comes, Parquet in row groups
of ``ROW_GROUP`` rows, recordings line by line — memory does not grow with the data.

Anonymization (``anonymize.py``): experts and attempts get keyed-HMAC pseudonyms; no names,
e-mails, usernames, IPs or host names; times are seconds relative to the attempt's start
(absolute dates only as ``YYYY-MM``); free text is scrubbed.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import secrets
import shutil
import time
import zipfile
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.db import transaction

from baseliner.attempts import clock
from baseliner.attempts.models import Attempt, Cohort
from baseliner.attempts.states import FINISHED_STATES
from baseliner.audit.services import audit_record
from baseliner.catalog.models import Environment
from baseliner.recording.models import CommandRecord
from baseliner.scoring.models import ScoreEntry
from baseliner.surveys.models import SurveyResponse
from baseliner.surveys.services import survey_answer_label, survey_questions_by_id

from . import casts
from .analysis import best_so_far, entry_point, has_counting_entry
from .anonymize import Scrubber, key_id, pseudonym
from .models import ExportJob

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1.2"  # 1.1: notes table, attempts.scoring_returned_seconds, clock event "scoring"; 1.2: survey_answers.answer_label
ROW_GROUP = 5000

S, F, I, B = pa.string(), pa.float64(), pa.int64(), pa.bool_()

# table -> [(column, type, description)]; the README is generated from this.
TABLES: dict[str, list[tuple[str, pa.DataType, str]]] = {
    "attempts": [
        ("attempt_id", S, "Pseudonymous attempt id (keyed HMAC; stable across exports with the same key)"),
        ("expert_id", S, "Pseudonymous expert id (keyed HMAC; stable across exports with the same key)"),
        ("environment", S, "Environment slug"),
        ("environment_version", I, "Environment version the attempt ran on (see environments)"),
        ("cohort", S, "Cohort name, empty if none"),
        ("state", S, "ended or surveyed (only finished attempts are exported)"),
        ("end_reason", S, "expert, timeout, staff, infrastructure, withdrawn"),
        ("started_month", S, "Month the attempt started, YYYY-MM (the only absolute date)"),
        ("time_limit_seconds", F, "Time limit including staff extensions"),
        ("time_used_seconds", F, "Attempt time used (pauses excluded)"),
        ("paused_seconds", F, "Total pause time"),
        ("extension_seconds", F, "Total staff extensions"),
        ("scoring_returned_seconds", F, "Scoring time given back to the clock (environments where scoring does not count against it)"),
        ("aggregation", S, "best (best entry counts) or last (final submission counts)"),
        ("final_normalized_score", F, "From the score log: the best (or, for last, the final) entry; null if none counts"),
        ("score_entries", I, "Rows in score_entries"),
        ("commands", I, "Rows in commands"),
        ("recordings", I, "Rows in recordings"),
        ("is_invalid", B, "Marked invalid by staff (only present when the export includes invalid attempts)"),
        ("invalid_reason", S, "Staff's reason, scrubbed"),
    ],
    "score_entries": [
        ("attempt_id", S, "Attempt"),
        ("sequence", I, "1, 2, 3... within the attempt"),
        ("elapsed_seconds", F, "Attempt time used when the scoring was requested"),
        ("at_seconds", F, "Wall-clock seconds from the attempt's start to the end of the run"),
        ("raw_score", F, "The scorer's raw score (null if invalid or error)"),
        ("normalized_score", F, "(raw - y_start) / (y_ref - y_start); higher is better"),
        ("status", S, "ok, invalid, error"),
        ("trigger", S, "button, command, final, staff"),
        ("message", S, "Scorer message shown to the expert, scrubbed"),
        ("details", S, "Scorer details (JSON text), scrubbed"),
        ("scoring_seconds", F, "How long the scorer ran"),
    ],
    "clock_events": [
        ("attempt_id", S, "Attempt"),
        ("kind", S, "start, pause, resume, extend, warning, scoring (scoring time given back), end"),
        ("at_seconds", F, "Wall-clock seconds from the attempt's start"),
        ("seconds", F, "Extension length, minutes left for a warning, or scoring time given back"),
        ("reason", S, "Free text, scrubbed"),
        ("by_staff", B, "Done by a staff member"),
    ],
    "notes": [
        ("attempt_id", S, "Attempt"),
        ("at_seconds", F, "Wall-clock seconds from the attempt's start"),
        ("elapsed_seconds", F, "Attempt time when the note was written"),
        ("text", S, "The note, scrubbed"),
        ("by_staff", B, "Written by a staff member (not the expert)"),
    ],
    "commands": [
        ("attempt_id", S, "Attempt"),
        ("terminal", S, "Terminal name, scrubbed"),
        ("at_seconds", F, "Wall-clock seconds from the attempt's start to the command's start"),
        ("elapsed_seconds", F, "Attempt time at the command's start"),
        ("duration_seconds", F, "Run time; null if it never finished"),
        ("cwd", S, "Working directory, scrubbed (home is /home/<user>)"),
        ("command", S, "The command line, scrubbed (<secret>, <email>, <ip>, <host>, <user>, <name>)"),
        ("exit_status", I, "Exit status; null if unknown"),
        ("source", S, "bridge (browser terminal) or machine (any shell)"),
    ],
    "survey_answers": [
        ("attempt_id", S, "Attempt"),
        ("survey", S, "Survey name"),
        ("survey_version", I, "Survey version"),
        ("question_id", S, "Question id (e.g. score_matched_expectations)"),
        ("answer", S, "The answer; text answers scrubbed; lists and numbers as JSON text; a scale answer is its position (1 = first option)"),
        ("answer_label", S, "For a scale (likert) answer, the text of the chosen option (e.g. Easy); null otherwise"),
        ("submitted_at_seconds", F, "Wall-clock seconds from the attempt's start"),
    ],
    "environments": [
        ("environment", S, "Slug"),
        ("version", I, "Version"),
        ("content_hash", S, "SHA-256 over the environment folder"),
        ("title", S, "Title"),
        ("source", S, "native or metr"),
        ("metr_task_name", S, "Task name in a METR task family"),
        ("direction", S, "higher or lower (raw score)"),
        ("aggregation", S, "best or last"),
        ("y_start", F, "Raw score of the starting solution (normalizes to 0)"),
        ("y_ref", F, "Raw score of the reference solution (normalizes to 1)"),
        ("time_limit_seconds", F, "Default time limit"),
        ("created_month", S, "YYYY-MM"),
    ],
    "recordings": [
        ("attempt_id", S, "Attempt"),
        ("terminal", S, "Terminal name, scrubbed"),
        ("file", S, "Path of the asciicast v2 file in the bundle"),
        ("start_seconds", F, "Wall-clock seconds from the attempt's start to the recording's start"),
        ("end_seconds", F, "... to its end; null if it never closed"),
        ("width", I, "Columns"),
        ("height", I, "Rows"),
    ],
}


class ExportFilterError(ValueError):
    """A filter the export cannot use; ``str()`` says which and why."""


def clean_filters(raw: dict) -> dict:
    """Validate export filters: ``cohort`` (id or name), ``environment`` (slug), ``since`` and
    ``until`` (YYYY-MM-DD, inclusive, on the start date), ``include_invalid`` (bool)."""
    raw = raw or {}
    out: dict = {"cohort": None, "environment": "", "since": "", "until": "", "include_invalid": bool(raw.get("include_invalid"))}
    cohort = raw.get("cohort")
    if cohort not in (None, ""):
        found = Cohort.objects.filter(pk=int(cohort)).first() if str(cohort).isdigit() else Cohort.objects.filter(name=cohort).first()
        if found is None:
            raise ExportFilterError(f"No cohort “{cohort}”.")
        out["cohort"] = found.pk
    env = (raw.get("environment") or "").strip()
    if env:
        if not Environment.objects.filter(slug=env).exists():
            raise ExportFilterError(f"No environment “{env}”.")
        out["environment"] = env
    for name in ("since", "until"):
        value = raw.get(name) or ""
        if isinstance(value, date):
            value = value.isoformat()
        value = str(value).strip()
        if value:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise ExportFilterError(f"“{value}” is not a date (YYYY-MM-DD) for {name}.") from None
        out[name] = value
    if out["since"] and out["until"] and out["since"] > out["until"]:
        raise ExportFilterError(f"The range is empty: {out['since']} is after {out['until']}.")
    return out


def export_attempts(filters: dict):
    qs = Attempt.objects.filter(state__in=FINISHED_STATES, started_at__isnull=False).select_related("environment", "expert", "assignment__cohort")
    if filters.get("cohort"):
        qs = qs.filter(assignment__cohort_id=filters["cohort"])
    if filters.get("environment"):
        qs = qs.filter(environment__slug=filters["environment"])
    if filters.get("since"):
        qs = qs.filter(started_at__date__gte=filters["since"])
    if filters.get("until"):
        qs = qs.filter(started_at__date__lte=filters["until"])
    if not filters.get("include_invalid"):
        qs = qs.filter(is_invalid=False)
    return qs.order_by("started_at", "pk")


class TableWriter:
    """Writes one table as JSONL, CSV and Parquet at once, row by row."""

    def __init__(self, folder: Path, name: str, columns):
        self.name, self.columns = name, columns
        self.names = [c[0] for c in columns]
        self.schema = pa.schema([(c[0], c[1]) for c in columns])
        self.jsonl = open(folder / f"{name}.jsonl", "w", encoding="utf-8")
        self.csv_file = open(folder / f"{name}.csv", "w", encoding="utf-8", newline="")
        self.csv = csv.writer(self.csv_file)
        self.csv.writerow(self.names)
        self.parquet = pq.ParquetWriter(folder / f"{name}.parquet", self.schema, compression="zstd")
        self.buffer: list[dict] = []
        self.rows = 0

    def write(self, row: dict) -> None:
        row = {n: row.get(n) for n in self.names}
        self.jsonl.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.csv.writerow(["" if row[n] is None else row[n] for n in self.names])
        self.buffer.append(row)
        self.rows += 1
        if len(self.buffer) >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self.buffer:
            self.parquet.write_table(pa.Table.from_pylist(self.buffer, schema=self.schema))
            self.buffer = []

    def close(self) -> None:
        self._flush()
        self.parquet.close()
        self.jsonl.close()
        self.csv_file.close()


def _seconds(at, start) -> float | None:
    return None if at is None or start is None else round((at - start).total_seconds(), 3)


def _month(at) -> str:
    return at.strftime("%Y-%m") if at else ""


def _num(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def _answer_text(value, scrub) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return scrub(value)
    return scrub(json.dumps(value, ensure_ascii=False))


class Progress:
    """Writes the job's progress at most every ``interval`` seconds (the page polls it)."""

    def __init__(self, job: ExportJob, interval: float = 0.5):
        self.job, self.interval, self.last = job, interval, 0.0

    def __call__(self, percent: int, message: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        self.job.progress = max(0, min(100, int(percent)))
        self.job.message = message[:300]
        self.job.save(update_fields=["progress", "message"])


def write_bundle(folder: Path, *, filters: dict, key: str | None = None, progress=None) -> dict:
    """Write the bundle's files into ``folder``; returns the row counts per table."""
    progress = progress or (lambda *a, **k: None)
    writers = {name: TableWriter(folder, name, cols) for name, cols in TABLES.items()}
    (folder / "recordings").mkdir()
    env_ids: set[int] = set()
    qs = export_attempts(filters)
    total = qs.count()
    try:
        for done, attempt in enumerate(qs.iterator(chunk_size=100)):
            progress(5 + 85 * done / max(total, 1), f"Attempt {done + 1} of {total}")
            _write_attempt(attempt, writers, folder, key=key)
            env_ids.add(attempt.environment_id)
        progress(90, "Environments", force=True)
        for env in Environment.objects.filter(pk__in=env_ids).order_by("slug", "version"):
            writers["environments"].write({
                "environment": env.slug, "version": env.version, "content_hash": env.content_hash, "title": env.title,
                "source": env.source, "metr_task_name": env.metr_task_name, "direction": env.direction,
                "aggregation": env.aggregation, "y_start": env.y_start, "y_ref": env.y_ref,
                "time_limit_seconds": float(env.time_limit_seconds), "created_month": _month(env.created),
            })
    finally:
        for w in writers.values():
            w.close()
    return {name: w.rows for name, w in writers.items()}


def _write_attempt(attempt: Attempt, writers: dict, folder: Path, *, key: str | None) -> None:
    scrubber = Scrubber.for_attempt(attempt)
    scrub = scrubber.scrub
    aid = pseudonym("attempt", attempt.pk, key=key)
    start = attempt.started_at
    env = attempt.environment
    points = []
    n_scores = 0
    for e in ScoreEntry.objects.filter(attempt=attempt).order_by("sequence").iterator():
        n_scores += 1
        point = entry_point(environment=env, elapsed=e.elapsed_seconds, raw=e.raw_score, status=e.status)
        if point is not None:
            points.append(point)
        writers["score_entries"].write({
            "attempt_id": aid, "sequence": e.sequence, "elapsed_seconds": _num(e.elapsed_seconds),
            "at_seconds": _seconds(e.created, start), "raw_score": _num(e.raw_score),
            "normalized_score": _num(e.normalized_score), "status": e.status, "trigger": e.trigger,
            "message": scrub(e.message), "details": json.dumps(scrubber.scrub_json(e.details), ensure_ascii=False),
            "scoring_seconds": _num(e.scoring_seconds),
        })
    for c in attempt.clock_events.all().order_by("at", "pk").iterator():
        writers["clock_events"].write({
            "attempt_id": aid, "kind": c.kind, "at_seconds": _seconds(c.at, start), "seconds": _num(c.seconds),
            "reason": scrub(c.reason), "by_staff": bool(c.actor_id and c.actor_id != attempt.expert_id),
        })
    for n in attempt.notes.order_by("created", "pk").iterator():
        writers["notes"].write({
            "attempt_id": aid, "at_seconds": _seconds(n.created, start),
            "elapsed_seconds": round(clock.time_used(attempt, at=n.created), 3) if start else None,
            "text": scrub(n.text), "by_staff": bool(n.author_id and n.author_id != attempt.expert_id),
        })
    n_commands = 0
    for c in CommandRecord.objects.filter(attempt=attempt).order_by("started_at", "pk").iterator(chunk_size=2000):
        n_commands += 1
        writers["commands"].write({
            "attempt_id": aid, "terminal": scrub(c.terminal), "at_seconds": _seconds(c.started_at, start),
            "elapsed_seconds": _num(c.elapsed_seconds), "duration_seconds": _num(c.duration_seconds),
            "cwd": scrub(c.cwd), "command": scrub(c.command), "exit_status": c.exit_status, "source": c.source,
        })
    response = SurveyResponse.objects.filter(attempt=attempt, submitted_at__isnull=False).select_related("survey").first()
    if response is not None and isinstance(response.answers, dict):
        questions = survey_questions_by_id(response.survey)
        for question_id, value in response.answers.items():
            label = survey_answer_label(questions.get(question_id), value)
            writers["survey_answers"].write({
                "attempt_id": aid, "survey": response.survey.name, "survey_version": response.survey.version,
                "question_id": scrub(str(question_id)), "answer": _answer_text(value, scrub),
                "answer_label": scrub(label) if label is not None else None,
                "submitted_at_seconds": _seconds(response.submitted_at, start),
            })
    n_recordings = 0
    rec_dir = folder / "recordings" / aid
    for rec in attempt.recordings.order_by("started_at", "pk"):
        if casts.recording_path(rec) is None:
            log.warning("export: recording %s of attempt %s has no file", rec.pk, attempt.pk)
            continue
        n_recordings += 1
        rec_dir.mkdir(parents=True, exist_ok=True)
        rel = f"recordings/{aid}/{n_recordings}.cast"
        with open(folder / rel, "w", encoding="utf-8") as out:
            for line in casts.export_cast(rec, scrub=scrubber.scrub_terminal):
                out.write(line)
        writers["recordings"].write({
            "attempt_id": aid, "terminal": scrub(rec.terminal), "file": rel, "start_seconds": _seconds(rec.started_at, start),
            "end_seconds": _seconds(rec.ended_at, start), "width": rec.width, "height": rec.height,
        })
    cohort = attempt.assignment.cohort
    writers["attempts"].write({
        "attempt_id": aid, "expert_id": pseudonym("expert", attempt.expert_id, key=key),
        "environment": env.slug, "environment_version": env.version, "cohort": cohort.name if cohort else "",
        "state": attempt.state, "end_reason": attempt.end_reason, "started_month": _month(start),
        "time_limit_seconds": float(clock.total_allowed(attempt)), "time_used_seconds": round(clock.time_used(attempt), 3),
        "paused_seconds": float(attempt.paused_seconds), "extension_seconds": float(attempt.extension_seconds),
        "scoring_returned_seconds": float(attempt.scoring_returned_seconds),
        "aggregation": env.aggregation,
        "final_normalized_score": (best_so_far(points, math.inf, aggregation=env.aggregation)
                                   if has_counting_entry(points, aggregation=env.aggregation) else None),
        "score_entries": n_scores, "commands": n_commands, "recordings": n_recordings,
        "is_invalid": attempt.is_invalid, "invalid_reason": scrub(attempt.invalid_reason),
    })


def readme_text() -> str:
    lines = [
        "# baseliner export", "",
        f"Schema version {SCHEMA_VERSION}. Human baselines of ML research-engineering environments, anonymized.", "",
        "- Ids are pseudonyms: keyed HMAC-SHA-256 of internal ids. Two bundles with the same `key_id` in",
        "  `manifest.json` use the same pseudonyms.",
        "- Times are seconds relative to the attempt's start; the only absolute dates are months (YYYY-MM).",
        "- Free text (commands, working directories, recordings, scorer messages, survey answers, notes) is scrubbed:",
        "  `<secret>` (API keys, tokens, passwords), `<email>`, `<ip>`, `<host>`, `<user>` (usernames,",
        "  home folders are `/home/<user>`), `<name>`.",
        "- Recordings are asciicast v2 (`recordings/<attempt_id>/<n>.cast`), times relative to the recording's",
        "  start (`recordings.start_seconds` places it in the attempt). Output is grouped by line; keyboard",
        "  input events are not exported (they include passwords typed at prompts that never echo).",
        "- Every table is given as JSON Lines, CSV and Parquet with the same columns; `manifest.json` lists",
        "  each file's SHA-256 and size.", "",
    ]
    for name, cols in TABLES.items():
        lines += [f"## {name}", "", "| column | type | meaning |", "|---|---|---|"]
        lines += [f"| `{c}` | {t} | {d} |" for c, t, d in cols]
        lines.append("")
    return "\n".join(lines)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: Path, *, counts: dict, filters: dict, key: str | None = None) -> dict:
    (folder / "README.md").write_text(readme_text(), encoding="utf-8")
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != "manifest.json":
            files[rel] = {"sha256": _sha256(path), "bytes": path.stat().st_size}
    manifest = {
        "format": "baseliner-export",
        "schema_version": SCHEMA_VERSION,
        "created_month": _month(clock.now()),
        "key_id": key_id(key),
        "filters": {
            "cohort": Cohort.objects.get(pk=filters["cohort"]).name if filters.get("cohort") else None,
            "environment": filters.get("environment") or None,
            "since_month": (filters.get("since") or "")[:7] or None,
            "until_month": (filters.get("until") or "")[:7] or None,
            "include_invalid": bool(filters.get("include_invalid")),
        },
        "counts": counts,
        "files": files,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


def export_build(*, job_id: int, key: str | None = None) -> ExportJob | None:
    """Build the bundle of ``job_id``. Runs once: a job that is not queued (done, failed, or
    already picked up by another worker) is left alone and None returned."""
    with transaction.atomic():
        job = ExportJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status != ExportJob.Status.QUEUED:
            return None
        job.status = ExportJob.Status.RUNNING
        job.started_at = clock.now()
        job.message = "Starting"
        job.save(update_fields=["status", "started_at", "message"])
    exports = Path(settings.EXPORTS_DIR)
    exports.mkdir(parents=True, exist_ok=True)
    name = f"baseliner-export-{job.pk}"
    work = exports / f".tmp-{name}-{secrets.token_hex(4)}"
    folder = work / name
    progress = Progress(job)
    try:
        folder.mkdir(parents=True)
        counts = write_bundle(folder, filters=job.filters, key=key, progress=progress)
        progress(92, "Manifest", force=True)
        write_manifest(folder, counts=counts, filters=job.filters, key=key)
        progress(95, "Packing", force=True)
        partial = work / f"{name}.zip"
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                z.write(path, arcname=f"{name}/{path.relative_to(folder).as_posix()}")
        final = exports / f"{name}.zip"
        os.replace(partial, final)
        job.path = final.name
        job.size = final.stat().st_size
        job.sha256 = _sha256(final)
        job.counts = counts
        job.status = ExportJob.Status.DONE
        job.progress = 100
        job.message = "Done"
        job.finished_at = clock.now()
        job.save(update_fields=["path", "size", "sha256", "counts", "status", "progress", "message", "finished_at"])
        audit_record(action="export.done", actor=job.created_by, target=f"exportjob:{job.pk}", data={"counts": counts, "sha256": job.sha256})
    except Exception as exc:
        log.exception("export %s failed", job.pk)
        job.status = ExportJob.Status.FAILED
        job.error = f"{type(exc).__name__}: {exc}"
        job.message = "Failed"
        job.finished_at = clock.now()
        job.save(update_fields=["status", "error", "message", "finished_at"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return job


def export_file(job: ExportJob) -> Path | None:
    if job.status != ExportJob.Status.DONE or not job.path:
        return None
    path = (Path(settings.EXPORTS_DIR) / job.path).resolve()
    if not path.is_relative_to(Path(settings.EXPORTS_DIR).resolve()) or not path.is_file():
        return None
    return path
