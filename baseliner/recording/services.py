"""Writes of the recording app: terminal recordings, the command log, editor saves."""
from __future__ import annotations

import json
import logging
import secrets
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from baseliner.attempts import clock
from baseliner.attempts.models import Attempt

from .asciicast import AsciicastWriter
from .models import CommandRecord, EditorSave, Recording

log = logging.getLogger(__name__)


def recording_open(*, attempt_id: int, terminal: str, width: int, height: int, reader=None,
                   read_only: bool = False) -> tuple[Recording, AsciicastWriter]:
    """A new recording (row + asciicast writer) for one connection to one terminal."""
    at = clock.now()
    rel = f"attempt-{int(attempt_id)}/{terminal}-{at:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}.cast"
    recording = Recording.objects.create(
        attempt_id=attempt_id, terminal=terminal, path=rel, started_at=at, width=width, height=height,
        reader=reader if reader is not None and reader.is_authenticated else None, read_only=read_only,
    )
    writer = AsciicastWriter(Path(settings.RECORDINGS_DIR) / rel, width=width, height=height,
                             timestamp=at.timestamp(), title=f"attempt {attempt_id} · {terminal}",
                             heartbeat=settings.RECORDING_HEARTBEAT_SECONDS)
    writer.flush()
    return recording, writer


def recording_close(*, recording_id: int, writer: AsciicastWriter) -> None:
    writer.close()
    fields = {"ended_at": clock.now(), "bytes_out": writer.bytes_out, "bytes_in": writer.bytes_in, "gaps": writer.gaps,
              "lost_bytes": writer.lost_total}
    if writer.error:
        fields["write_error"] = f"{writer.error}; closed while failing, its last events were lost"[:200]
    Recording.objects.filter(pk=recording_id).update(**fields)
    if writer.gaps and not writer.error:  # it failed at some point and worked again by the end
        recording_write_state(recording_id=recording_id, error=None)


def recording_discard(*, recording_id: int, writer: AsciicastWriter) -> None:
    """A recording of a connection that never reached the machine (no output, no input):
    removed, so review lists only connections that showed something."""
    writer.close()
    writer.path.unlink(missing_ok=True)
    Recording.objects.filter(pk=recording_id).delete()


def recording_write_state(*, recording_id: int, error: str | None) -> None:
    """The bridge reports that the disk started (``error``) or stopped (None) refusing this
    recording's writes. The terminal itself keeps working either way; staff are alerted
    (``recording_alerts``, shown on the live monitor) and the audit log keeps both moments."""
    recording = Recording.objects.filter(pk=recording_id).first()
    if recording is None or (recording.write_error or None) == error:
        return
    from baseliner.audit.services import audit_record

    with transaction.atomic():
        if error:
            Recording.objects.filter(pk=recording_id).update(write_error=error[:200], write_error_since=clock.now())
            audit_record(action="recording.failing", attempt=recording.attempt, target=f"recording:{recording_id}",
                         reason=error[:200], data={"terminal": recording.terminal, "path": recording.path})
        else:
            since = recording.write_error_since
            Recording.objects.filter(pk=recording_id).update(write_error="", write_error_since=None)
            audit_record(action="recording.resumed", attempt=recording.attempt, target=f"recording:{recording_id}",
                         data={"terminal": recording.terminal, "was": recording.write_error,
                               "seconds": round((clock.now() - since).total_seconds()) if since else None})


def recording_alerts(*, attempt_ids) -> dict[int, list[str]]:
    """What staff must know about these attempts' recordings: each one whose writes the disk
    refuses now (or refused until it closed)."""
    alerts: dict[int, list[str]] = {}
    failing = Recording.objects.filter(attempt_id__in=attempt_ids).exclude(write_error="").order_by("started_at", "pk")
    for rec in failing:
        since = f" since {rec.write_error_since:%H:%M:%S} UTC" if rec.write_error_since else ""
        if rec.ended_at is None:
            text = (f"Recording of terminal {rec.terminal} of attempt {rec.attempt_id} is failing{since}: {rec.write_error}. "
                    "The expert's terminal keeps working; events wait in memory until the disk accepts them.")
        else:
            text = f"Recording of terminal {rec.terminal} of attempt {rec.attempt_id} failed{since}: {rec.write_error}."
        alerts.setdefault(rec.attempt_id, []).append(text)
    return alerts


def recording_path(recording: Recording) -> Path:
    return Path(settings.RECORDINGS_DIR) / recording.path


def _last_event_seconds(path: Path) -> float | None:
    """The time (seconds from the recording's start) of the file's last complete event."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 65536))
        tail = f.read()
    for line in reversed(tail.splitlines()):
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut by the crash, or the start of the window
        if isinstance(event, list) and event and isinstance(event[0], (int, float)):
            return float(event[0])
        if isinstance(event, dict):
            return 0.0  # only the header
    return None


def recording_close_orphans(*, stale_seconds: float | None = None) -> int:
    """Close the recordings whose bridge died without closing them (a killed web server):
    ``ended_at`` becomes the time of the file's last event (else its mtime, else the start).

    A live bridge, in whichever web process, writes or touches its file at least every
    ``RECORDING_HEARTBEAT_SECONDS`` (``AsciicastWriter.flush``), so a file untouched for
    ``stale_seconds`` (``RECORDING_ORPHAN_SECONDS``, at least three heartbeats) has no bridge. A file
    the disk never let its bridge create is closed only once its attempt is over. Safe to run
    in several workers at once; a bridge that closes its row later simply writes its own end."""
    stale = float(stale_seconds if stale_seconds is not None else settings.RECORDING_ORPHAN_SECONDS)
    stale = max(stale, 3 * float(settings.RECORDING_HEARTBEAT_SECONDS))
    now = clock.now()
    closed = 0
    from baseliner.attempts.states import LIVE_STATES

    for rec in Recording.objects.filter(ended_at__isnull=True).select_related("attempt"):
        path = recording_path(rec)
        try:
            mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=dt_timezone.utc)
        except OSError:
            mtime = None
        if mtime is None:
            if rec.attempt.state in LIVE_STATES or now - rec.started_at < timedelta(seconds=stale):
                continue
            ended = rec.started_at
        else:
            if now - mtime < timedelta(seconds=stale):
                continue
            try:
                last = _last_event_seconds(path)
            except OSError:
                last = None
            ended = rec.started_at + timedelta(seconds=last) if last is not None else mtime
            ended = min(max(ended, rec.started_at), mtime)
        if Recording.objects.filter(pk=rec.pk, ended_at__isnull=True).update(ended_at=ended):
            closed += 1
            log.info("recording %s (attempt %s, terminal %s) had no live bridge: closed at %s",
                     rec.pk, rec.attempt_id, rec.terminal, ended.isoformat())
    return closed


def command_start(*, attempt_id: int, terminal: str, marker: str, started_at: datetime, cwd: str,
                  command: str) -> CommandRecord | None:
    """Log a command as it starts (so a command still running at the end is logged too).
    The same marker seen by a second window on the terminal returns None."""
    attempt = Attempt.objects.get(pk=attempt_id)
    try:
        with transaction.atomic():
            return CommandRecord.objects.create(
                attempt=attempt, terminal=terminal, marker=marker[:100], started_at=started_at,
                elapsed_seconds=clock.time_used(attempt, at=started_at), cwd=cwd[:1000], command=command,
            )
    except IntegrityError:
        return None


def command_finish(*, record_id: int, exit_status: int, duration_seconds: float) -> None:
    CommandRecord.objects.filter(pk=record_id).update(exit_status=exit_status, duration_seconds=max(0.0, duration_seconds))


def editor_save_record(*, attempt: Attempt, path: str, size: int, sha256: str, at: datetime | None = None) -> EditorSave:
    at = at or clock.now()
    return EditorSave.objects.create(attempt=attempt, path=path, created=at, elapsed_seconds=clock.time_used(attempt, at=at),
                                     size=size, sha256=sha256)
