"""
The recording volume fills up during a live terminal: a real tmpfs mounted over the server's
recordings folder, filled by a file until the kernel says ENOSPC. The expert's terminal keeps
working (never disconnected), staff see an alert on the live monitor (and the audit log keeps
it), and when space returns the recording resumes, with a marker a reviewer sees in playback.
"""
import errno
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from django.test import Client

from baseliner.audit.models import AuditEvent
from baseliner.recording.asciicast import GAP_MARKER, read_asciicast
from baseliner.recording.models import Recording
from baseliner.review.casts import stitched_cast
from tests import factories
from tests.conftest import ServerProcess, free_port, subprocess_env
from tests.test_terminal import Term, wait_for
from tests.workspace_support import *  # noqa: F401,F403
from tests.workspace_support import ws_connect

pytestmark = [pytest.mark.slow, pytest.mark.faults,
              pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")]


@pytest.fixture
def small_volume():
    """A 2 MiB tmpfs of this test's own; unmounted afterwards, whatever happened."""
    path = Path(tempfile.mkdtemp(prefix="bl-rec-volume-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0750", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(path)], check=False)
        path.rmdir()


def fill(volume: Path) -> Path:
    """Write a file until the volume is full (ENOSPC)."""
    filler = volume / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_a_full_recording_disk_keeps_the_terminal_alerts_staff_and_resumes_with_a_marker(
        machine_attempt, small_volume, tmp_path, settings):
    m = machine_attempt
    settings.RECORDINGS_DIR = small_volume
    server = ServerProcess(free_port(), tmp_path / "server.log", env=lambda: subprocess_env(RECORDINGS_DIR=small_volume))
    server.start()
    staff = Client()
    staff.force_login(factories.user(staff=True))
    try:
        t = Term(ws_connect(server.url, f"/ws/attempts/{m.attempt.pk}/terminals/main/?cols=100&rows=30", user=m.expert))
        t.control_message("ready")
        t.send("echo before-$((1+1))\r")
        t.read_until("before-2")  # the typed line reads before-$((1+1)); tmux may move the cursor, not CRLF, after it
        recording = Recording.objects.get(attempt=m.attempt)
        cast = small_volume / recording.path
        wait_for(lambda: cast.exists() and "before-2" in cast.read_text())

        filler = fill(small_volume)
        full_at = time.monotonic()
        # Output keeps coming on the machine and reaches the expert while nothing can be written.
        t.send("for i in $(seq 1 30); do echo during-$i; sleep 0.1; done; echo loop-$((2*5))\r")
        t.read_until("loop-10\r\n")
        t.send("echo alive-$((6*7))\r")
        t.read_until("alive-42\r\n")

        # Staff are alerted: the live monitor (page and its JSON), and the audit log.
        wait_for(lambda: Recording.objects.get(pk=recording.pk).write_error == "disk full", timeout=10)
        alert = f"Recording of terminal main of attempt {m.attempt.pk} is failing"
        page = staff.get("/review/").content.decode()
        assert alert in page and "disk full" in page
        row = next(r for r in staff.get("/review/monitor.json").json()["attempts"] if r["id"] == m.attempt.pk)
        assert len(row["alerts"]) == 1 and row["alerts"][0].startswith(alert) and "disk full" in row["alerts"][0]
        assert AuditEvent.objects.filter(attempt=m.attempt, action="recording.failing", reason="disk full").count() == 1
        assert "before-2" in cast.read_text() and "alive-42" not in cast.read_text()  # really not written

        filler.unlink()  # space returns
        wait_for(lambda: Recording.objects.get(pk=recording.pk).write_error == "", timeout=10)
        outage = time.monotonic() - full_at
        assert AuditEvent.objects.filter(attempt=m.attempt, action="recording.resumed").count() == 1
        row = next(r for r in staff.get("/review/monitor.json").json()["attempts"] if r["id"] == m.attempt.pk)
        assert row["alerts"] == []
        t.send("echo after-$((7*7))\r")
        t.read_until("after-49")
        assert not [c for c in t.control if c.get("type") in ("error", "closed")], t.control  # never disconnected
        t.close()

        recording = wait_for(lambda: Recording.objects.filter(pk=recording.pk, ended_at__isnull=False).first())
        assert recording.gaps == 1 and recording.lost_bytes == 0 and recording.write_error == ""
        _, events = read_asciicast(cast)  # valid asciicast v2, times never go backwards
        output = "".join(e[2] for e in events if e[1] == "o").replace("\x1b[K", "")  # tmux's erase-line, as in read_until
        for word in ("before-2", "during-1\r\n", "during-30\r\n", "loop-10", "alive-42", "after-49"):
            assert word in output, word
        gap = [e for e in events if e[1] == "m" and e[2].startswith(GAP_MARKER)]
        assert len(gap) == 1 and "(disk full); nothing lost" in gap[0][2], gap
        # The outage's output kept its own time (held in memory, not bunched at the recovery);
        # the marker sits where writing resumed, within the outage's length of the fill.
        during = next(e for e in events if e[1] == "o" and "during-30" in e[2])
        before = next(e for e in events if e[1] == "o" and "before-2" in e[2])
        assert before[0] < during[0] < gap[0][0] <= before[0] + outage + 5
        # A reviewer sees the marker in the stitched playback of the terminal.
        stitched = "".join(stitched_cast([recording]))
        assert GAP_MARKER in stitched and "nothing lost" in stitched
    finally:
        server.stop()
