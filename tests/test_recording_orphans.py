"""A recording cut short by a killed web server is closed by the beat task
(``recording_close_orphans``) at the time of its last event, while a quiet terminal whose bridge
still lives in another web process is left open: a live bridge touches its file's mtime."""
import json
import os
import time
from datetime import timedelta

import pytest

from baseliner.attempts import clock
from baseliner.attempts.services import attempt_clock_start, attempt_transition
from baseliner.attempts.states import State
from baseliner.recording.asciicast import AsciicastWriter
from baseliner.recording.models import Recording
from baseliner.recording.services import recording_close_orphans, recording_path
from tests import factories
from tests.conftest import ServerProcess, free_port, subprocess_env
from tests.test_terminal import Term, wait_for
from tests.workspace_support import *  # noqa: F401,F403
from tests.workspace_support import ws_connect


def test_an_idle_writer_touches_its_file_so_a_quiet_terminal_looks_alive(tmp_path):
    path = tmp_path / "t.cast"
    w = AsciicastWriter(path, width=80, height=24, heartbeat=0.2)
    w.output(b"hi")
    assert w.flush()
    old = time.time() - 600
    os.utime(path, (old, old))
    w.flush()  # nothing to write, heartbeat not due yet
    assert path.stat().st_mtime == pytest.approx(old, abs=1)
    time.sleep(0.3)
    w.flush()
    assert path.stat().st_mtime > time.time() - 5
    size = path.stat().st_size
    w.close()
    assert path.stat().st_size == size  # a heartbeat writes nothing


@pytest.mark.django_db
def test_a_row_without_a_file_is_closed_only_once_its_attempt_is_over(settings, tmp_path):
    settings.RECORDINGS_DIR = tmp_path
    settings.RECORDING_HEARTBEAT_SECONDS = 0.1
    attempt = factories.attempt()
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    attempt = attempt_clock_start(attempt=attempt)
    started = clock.now() - timedelta(hours=1)
    rec = Recording.objects.create(attempt=attempt, terminal="t", path="missing.cast", started_at=started)
    assert recording_close_orphans(stale_seconds=1) == 0  # the attempt runs: its bridge may be unable to write
    assert Recording.objects.get(pk=rec.pk).ended_at is None
    attempt_transition(attempt=attempt, to=State.ENDED)
    assert recording_close_orphans(stale_seconds=1) == 1
    assert Recording.objects.get(pk=rec.pk).ended_at == started


@pytest.mark.slow
def test_a_killed_servers_recording_is_closed_at_its_last_event_and_a_live_quiet_one_is_not(
        machine_attempt, tmp_path, settings):
    m = machine_attempt
    settings.RECORDING_HEARTBEAT_SECONDS = 0.5
    env = lambda: subprocess_env(RECORDING_HEARTBEAT_SECONDS="0.5")  # noqa: E731
    doomed = ServerProcess(free_port(), tmp_path / "doomed.log", env=env)
    alive = ServerProcess(free_port(), tmp_path / "alive.log", env=env)
    doomed.start()
    alive.start()
    try:
        t1 = Term(ws_connect(doomed.url, f"/ws/attempts/{m.attempt.pk}/terminals/one/?cols=100&rows=30", user=m.expert))
        t1.control_message("ready")
        t1.send("echo before-$((6*7))\r")
        t1.read_until("before-42\r\n")
        dead = Recording.objects.get(attempt=m.attempt, terminal="one")
        wait_for(lambda: recording_path(dead).exists() and "before-42" in recording_path(dead).read_text())
        time.sleep(1.2)  # the last flush of the echoed prompt
        doomed.kill()
        killed_at = clock.now()

        t2 = Term(ws_connect(alive.url, f"/ws/attempts/{m.attempt.pk}/terminals/two/?cols=100&rows=30", user=m.expert))
        t2.control_message("ready")
        t2.send("echo quiet\r")
        t2.read_until("quiet\r\n")
        live = Recording.objects.get(attempt=m.attempt, terminal="two")
        time.sleep(6)  # both quiet now; only the live bridge's heartbeat touches its file

        closed = recording_close_orphans(stale_seconds=4)
        dead.refresh_from_db()
        live.refresh_from_db()
        assert closed == 1, (closed, dead.ended_at, live.ended_at)
        assert live.ended_at is None, "a quiet terminal in another live server was closed"
        assert dead.ended_at is not None
        lines = recording_path(dead).read_text().splitlines()
        last = json.loads(lines[-1])[0]
        assert dead.ended_at == dead.started_at + timedelta(seconds=last)
        assert dead.started_at < dead.ended_at <= killed_at

        t2.close()
        wait_for(lambda: Recording.objects.get(pk=live.pk).ended_at)  # closed by its own bridge
    finally:
        doomed.stop()
        alive.stop()
