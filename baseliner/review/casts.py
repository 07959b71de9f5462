"""
Reading asciicast v2 recordings line by line: stitching the recordings of one terminal for
playback, and rewriting a recording for export.

A recording is written incrementally while the expert works, so its last line may be cut
short; unreadable lines are skipped, never fatal. Nothing here holds a whole file in memory.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from django.conf import settings

from baseliner.recording.asciicast import GAP_MARKER
from baseliner.recording.models import Recording

log = logging.getLogger(__name__)

# Output is coalesced to whole lines before scrubbing (a secret echoed one keystroke at a time
# must be seen whole); a line longer than this is flushed anyway.
MAX_CHUNK = 1 << 20


def recording_path(recording: Recording) -> Path | None:
    """The file of ``recording`` under RECORDINGS_DIR, or None if missing or outside it."""
    root = Path(settings.RECORDINGS_DIR).resolve()
    path = (root / recording.path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def read_cast(path: Path) -> Iterator[tuple[str, object]]:
    """Yields ``("header", dict)`` once, then ``("event", [t, code, data])`` per line."""
    with open(path, encoding="utf-8", errors="replace") as f:
        first = True
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                value = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash while recording
            if first:
                first = False
                if isinstance(value, dict):
                    yield "header", value
                    continue
                yield "header", {}
            if isinstance(value, list) and len(value) >= 3 and isinstance(value[0], (int, float)) and isinstance(value[1], str):
                yield "event", value


def terminals(attempt) -> dict[str, list[Recording]]:
    """The attempt's recordings grouped by terminal, each list in time order."""
    out: dict[str, list[Recording]] = {}
    for rec in attempt.recordings.order_by("started_at", "pk"):
        out.setdefault(rec.terminal, []).append(rec)
    return out


def _line(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": ")) + "\n"


def stitched_cast(recordings: list[Recording], *, markers: list[tuple[datetime, str]] = ()) -> Iterator[str]:
    """One asciicast of a terminal's recordings in time order: time 0 is the start of the first;
    each later recording is placed at its own start (times never go backwards), a size change
    between recordings becomes a resize event, and ``markers`` (wall-clock time, label) become
    marker events. Marker events inside the files are dropped (the database is authoritative),
    except the recording's own gap markers (``GAP_MARKER``: the disk refused writes), which
    only the file knows."""
    if not recordings:
        return
    base = recordings[0].started_at
    width, height = recordings[0].width, recordings[0].height
    yield _line({"version": 2, "width": width, "height": height, "timestamp": int(base.timestamp())})
    pending = sorted(((max(0.0, (at - base).total_seconds()), label) for at, label in markers), key=lambda m: m[0])
    mi = 0
    last = 0.0
    size = (width, height)
    for rec in recordings:
        offset = (rec.started_at - base).total_seconds()
        path = recording_path(rec)
        if path is None:
            log.warning("recording %s: file %s is missing", rec.pk, rec.path)
            continue
        for kind, value in read_cast(path):
            if kind == "header":
                w, h = int(value.get("width") or rec.width), int(value.get("height") or rec.height)
                if (w, h) != size:
                    size = (w, h)
                    t = max(last, offset)
                    while mi < len(pending) and pending[mi][0] <= t:
                        yield _line([round(max(last, pending[mi][0]), 6), "m", pending[mi][1]])
                        mi += 1
                    last = t
                    yield _line([round(t, 6), "r", f"{w}x{h}"])
                continue
            t, code, data = value[0], value[1], value[2]
            if code == "m" and not str(data).startswith(GAP_MARKER):
                continue
            t = max(last, offset + float(t))
            while mi < len(pending) and pending[mi][0] <= t:
                yield _line([round(max(last, pending[mi][0]), 6), "m", pending[mi][1]])
                mi += 1
            last = t
            yield _line([round(t, 6), code, data])
    for at, label in pending[mi:]:
        yield _line([round(max(last, at), 6), "m", label])


def export_cast(recording: Recording, *, scrub) -> Iterator[str]:
    """The recording rewritten for export: a header without environment, title or absolute
    time; output coalesced to whole lines and scrubbed with ``scrub``; input events dropped
    (keystrokes include passwords typed at prompts that never echo); markers and resizes kept."""
    path = recording_path(recording)
    if path is None:
        return
    yield _line({"version": 2, "width": recording.width, "height": recording.height})
    buf: list[str] = []
    buf_len = 0
    buf_t = 0.0
    last = 0.0

    def flush(upto: str | None = None):
        nonlocal buf, buf_len, last
        text = "".join(buf)
        keep = ""
        if upto is not None:
            cut = max(text.rfind("\n"), text.rfind("\r")) + 1
            text, keep = text[:cut], text[cut:]
        if text:
            last = max(last, buf_t)
            yield _line([round(last, 6), "o", scrub(text)])
        buf, buf_len = ([keep], len(keep)) if keep else ([], 0)

    for kind, value in read_cast(path):
        if kind == "header":
            continue
        t, code, data = float(value[0]), value[1], value[2]
        if code == "o":
            if not buf:
                buf_t = t
            buf.append(str(data))
            buf_len += len(str(data))
            if buf_len > MAX_CHUNK:
                yield from flush()
            elif "\n" in data or "\r" in data:
                yield from flush(upto="line")
                if buf:
                    buf_t = t
        elif code in ("r", "m"):
            yield from flush()
            last = max(last, t)
            yield _line([round(last, 6), code, scrub(str(data)) if code == "m" else data])
    yield from flush()
