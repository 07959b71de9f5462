"""
asciicast v2 files, written incrementally (https://docs.asciinema.org/manual/asciicast/v2/).

    {"version": 2, "width": 80, "height": 24, "timestamp": 1763900000, ...}   header line
    [0.25, "o", "hello\\r\\n"]      output        [1.5, "i", "ls\\r"]   input
    [2.0, "r", "100x30"]           resize        [3.1, "m", "score"]  marker

The writer buffers events in memory and appends them with ``flush()`` (the bridge calls it
every second, so a crash loses at most a second). A full or failing disk never raises: the
events wait in a bounded buffer, the next flush retries, and when writes work again the file
gets a marker (``GAP_MARKER``) saying how long the disk refused them and how much was lost if
the buffer overflowed meanwhile (``gaps`` counts such episodes; ``error`` says what is wrong
while it lasts, for the staff alert).
While a terminal is idle, ``flush()`` still touches the file's mtime every ``heartbeat`` seconds:
an open file with an old mtime belongs to no live bridge (its server was killed), which is how
``recording_close_orphans`` tells a dead recording from a quiet one in another web process.
Output split in the middle of a UTF-8 character is decoded across events, never mangled.
"""
from __future__ import annotations

import codecs
import errno
import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

MAX_PENDING = 8 * 1024 * 1024  # bytes of encoded events kept while the disk refuses them
# Label prefix of the markers the writer itself adds (the review keeps them when stitching).
GAP_MARKER = "recording gap:"
# An open recording's file is written or touched at least this often by its live bridge
# (settings.RECORDING_HEARTBEAT_SECONDS).
HEARTBEAT_SECONDS = 30.0


def describe_os_error(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "disk full"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    return exc.strerror or str(exc)


class AsciicastWriter:
    def __init__(self, path: Path, *, width: int, height: int, timestamp: float | None = None,
                 title: str = "", env: dict | None = None, heartbeat: float = HEARTBEAT_SECONDS):
        self.path = Path(path)
        self.heartbeat = heartbeat
        self.started = time.monotonic()
        self.timestamp = timestamp if timestamp is not None else time.time()
        header = {"version": 2, "width": int(width), "height": int(height), "timestamp": int(self.timestamp)}
        if title:
            header["title"] = title
        header["env"] = env or {"TERM": "xterm-256color", "SHELL": "/bin/bash"}
        self._pending = bytearray(json.dumps(header).encode() + b"\n")
        self._fd: int | None = None
        self._out = codecs.getincrementaldecoder("utf-8")("replace")
        self._in = codecs.getincrementaldecoder("utf-8")("replace")
        self.gaps = 0
        self.lost_bytes = 0  # lost in the current episode (reported by its marker)
        self.lost_total = 0
        self._in_gap = False
        self._gap_started: float | None = None
        self.error: str | None = None  # what the disk says while it refuses writes
        self.bytes_out = 0
        self.bytes_in = 0
        self.closed = False
        self._touched = time.monotonic()

    def elapsed(self) -> float:
        return round(time.monotonic() - self.started, 6)

    def _event(self, kind: str, data: str) -> None:
        if self.closed:
            return
        line = json.dumps([self.elapsed(), kind, data], ensure_ascii=False).encode() + b"\n"
        if len(self._pending) + len(line) > MAX_PENDING:
            self.lost_bytes += len(line)
            self.lost_total += len(line)
            self._enter_gap()
            return
        self._pending += line

    def output(self, data: bytes) -> None:
        self.bytes_out += len(data)
        text = self._out.decode(data)
        if text:
            self._event("o", text)

    def input(self, data: bytes) -> None:
        self.bytes_in += len(data)
        text = self._in.decode(data)
        if text:
            self._event("i", text)

    def resize(self, width: int, height: int) -> None:
        self._event("r", f"{int(width)}x{int(height)}")

    def marker(self, label: str) -> None:
        self._event("m", label)

    def _enter_gap(self) -> None:
        if not self._in_gap:
            self._in_gap = True
            self._gap_started = time.monotonic()
            self.gaps += 1

    def flush(self) -> bool:
        """Append what is buffered. Returns False (and keeps it) if the disk refused it."""
        if not self._pending:
            self._heartbeat()
            return True
        try:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            self._touched = time.monotonic()
            view = memoryview(self._pending)
            done = 0
            try:
                while done < len(view):
                    done += os.write(self._fd, view[done:])
            finally:
                view.release()
                del self._pending[:done]  # a partial write is continued exactly, not repeated
        except OSError as exc:
            self._enter_gap()
            if self.error is None:
                log.warning("recording %s: write failed (%s); events wait in memory, will retry", self.path, exc)
            self.error = describe_os_error(exc)
            return False
        if self._in_gap:
            self._in_gap = False
            seconds = time.monotonic() - (self._gap_started or time.monotonic())
            lost, self.lost_bytes = self.lost_bytes, 0
            what = f"{lost} bytes of events lost" if lost else "nothing lost (events were held in memory)"
            self.marker(f"{GAP_MARKER} the disk refused writes for {seconds:.0f} s ({self.error or 'write failed'}); {what}")
            log.warning("recording %s: writing again after %.0f s; %s", self.path, seconds, what)
            self.error = None
            return self.flush()
        return True

    def _heartbeat(self) -> None:
        """Nothing to write: still show that a live bridge holds this file (see the module doc)."""
        if self._fd is None or self.closed or time.monotonic() - self._touched < self.heartbeat:
            return
        self._touched = time.monotonic()
        try:
            os.utime(self._fd)
        except OSError:
            pass

    def close(self) -> None:
        if self.closed:
            return
        tail_out = self._out.decode(b"", final=True)
        if tail_out:
            self._event("o", tail_out)
        if not self.flush():
            # The disk still refuses: what is left is lost; the row's counters say so.
            self.lost_total += len(self._pending)
            self._pending.clear()
        self.closed = True
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


def read_asciicast(path: Path) -> tuple[dict, list[list]]:
    """Parse an asciicast v2 file (header, events); raises ValueError if it is not one."""
    # "\n" only: str.splitlines() would also split inside an event at U+2028, U+2029 or U+0085,
    # which JSON leaves unescaped in the output text.
    lines = Path(path).read_text(encoding="utf-8").rstrip("\n").split("\n")
    if lines == [""]:
        lines = []
    if not lines:
        raise ValueError("empty file")
    header = json.loads(lines[0])
    if not isinstance(header, dict) or header.get("version") != 2 or "width" not in header or "height" not in header:
        raise ValueError("not an asciicast v2 header")
    events = []
    last = 0.0
    for n, line in enumerate(lines[1:], start=2):
        event = json.loads(line)
        if not (isinstance(event, list) and len(event) == 3 and isinstance(event[0], (int, float))
                and event[1] in ("o", "i", "r", "m") and isinstance(event[2], str)):
            raise ValueError(f"line {n}: not an asciicast v2 event: {line[:80]}")
        if event[0] < last:
            raise ValueError(f"line {n}: time goes backwards")
        last = event[0]
        events.append(event)
    return header, events
