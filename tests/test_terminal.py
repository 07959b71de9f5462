"""The terminal bridge through the real ASGI server, a real sshd and tmux (no browser)."""
import bisect
import json
import re
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from baseliner.audit.models import AuditEvent
from baseliner.recording.asciicast import read_asciicast
from baseliner.recording.models import CommandRecord, Recording
from baseliner.recording.services import recording_path
from baseliner.web.events import _send
from tests import factories
from tests.workspace_support import *  # noqa: F401,F403
from tests.async_support import async_test
from tests.workspace_support import ws_connect

pytestmark = pytest.mark.slow


class Term:
    """A minimal page: acks output like xterm.js does and collects what it shows."""

    def __init__(self, ws):
        self.ws, self.out, self.control = ws, bytearray(), []

    def send(self, text: str):
        self.ws.send(text.encode())

    def _recv(self, timeout):
        msg = self.ws.recv(timeout=timeout)
        if isinstance(msg, bytes):
            self.out += msg
            try:
                self.ws.send(json.dumps({"type": "ack", "bytes": len(msg)}))
            except ConnectionClosed:
                pass  # the server is closing: what it sent before its close frame is still to be read
        else:
            self.control.append(json.loads(msg))

    def read_until(self, needle: bytes | str, timeout: float = 10.0) -> bytes:
        needle = needle.encode() if isinstance(needle, str) else needle
        deadline = time.monotonic() + timeout
        # tmux may end a redrawn line with erase-to-end-of-line before its newline
        # ("after-49\x1b[K\r\n" for "after-49\r\n"): what the screen shows is the same.
        while needle not in self.out and needle not in self.out.replace(b"\x1b[K", b""):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen; got {bytes(self.out[-1500:])!r}")
            try:
                self._recv(left)
            except TimeoutError:
                continue
        return bytes(self.out)

    def control_message(self, kind: str, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for msg in self.control:
                if msg.get("type") == kind:
                    self.control.remove(msg)
                    return msg
            try:
                self._recv(max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"no {kind!r} message; got {self.control}")

    def close_code(self, timeout: float = 10.0) -> tuple[int, str]:
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self._recv(deadline - time.monotonic())
        except ConnectionClosed as exc:
            return exc.rcvd.code, exc.rcvd.reason
        raise AssertionError("the socket stayed open")

    def close(self):
        self.ws.close()


def open_term(live_url, m, name="main", user=None, query="cols=100&rows=30"):
    ws = ws_connect(live_url, f"/ws/attempts/{m.attempt.pk}/terminals/{name}/?{query}", user=user or m.expert)
    t = Term(ws)
    return t


def push_event(attempt_id, kind, payload):
    """Send an attempt event as a service would (from a thread of its own: once a browser
    test has run, Playwright keeps an event loop on this one)."""
    thread = threading.Thread(target=_send, args=(attempt_id, kind, payload))
    thread.start()
    thread.join()


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_commands_are_logged_with_exit_status_and_the_recording_is_asciicast_v2(live_url, machine_attempt):
    m = machine_attempt
    t = open_term(live_url, m)
    assert t.control_message("ready")["read_only"] is False
    t.send("echo hel''lo\r")
    t.read_until("hello")
    t.send("true\r")
    t.send("false\r")
    t.send("(exit 3)\r")
    t.send("mkdir -p sub && cd sub\r")
    # Forged markers (without the lease's nonce, wrapped in tmux's passthrough so they do reach
    # the bridge, with a real-nonce control): tests/security/test_command_log_forgery.py.
    t.send("echo ü€ finished\r")
    t.read_until("ü€ finished\r\n")
    commands = wait_for(lambda: list(CommandRecord.objects.filter(attempt=m.attempt).exclude(exit_status=None)
                                     .values_list("command", "exit_status", "cwd")) if
                        CommandRecord.objects.filter(attempt=m.attempt, command="echo ü€ finished").exclude(exit_status=None).exists() else None)
    assert commands[:4] == [("echo hel''lo", 0, m.home), ("true", 0, m.home), ("false", 1, m.home), ("(exit 3)", 3, m.home)]
    assert commands[-1] == ("echo ü€ finished", 0, m.home + "/sub")
    assert b"\x1b]133;" not in t.out  # the shell's own markers never reach the page
    record = CommandRecord.objects.get(attempt=m.attempt, command="false")
    assert record.terminal == "main" and 0 <= record.duration_seconds < 5 and record.elapsed_seconds >= 0
    t.close()

    recording = wait_for(lambda: Recording.objects.filter(attempt=m.attempt, ended_at__isnull=False).first())
    header, events = read_asciicast(recording_path(recording))
    assert (header["width"], header["height"]) == (100, 30) and header["timestamp"] > 0
    output = "".join(e[2] for e in events if e[1] == "o")
    typed = "".join(e[2] for e in events if e[1] == "i")
    assert "hello" in output and "ü€ finished" in output and "(exit 3)\r" in typed
    assert recording.bytes_out > 0 and recording.bytes_in == len(typed.encode())


def test_a_reconnect_reattaches_the_same_shell(live_url, machine_attempt):
    t = open_term(live_url, machine_attempt)
    t.send("export SECRET_WORD=swordfish\r")
    t.read_until("$ ")
    t.close()
    t = open_term(live_url, machine_attempt, query="cols=90&rows=20")
    t.send("echo word=$SECRET_WORD\r")
    t.read_until("word=swordfish")
    t.close()
    assert Recording.objects.filter(attempt=machine_attempt.attempt, terminal="main").count() == 2



def test_a_machine_that_does_not_answer_closes_the_terminal_with_why_and_records_nothing(live_url, machine_attempt):
    from baseliner.devtools.processes import free_port

    m = machine_attempt
    real_port = m.lease.port
    type(m.lease).objects.filter(pk=m.lease.pk).update(port=free_port())  # nothing listens there
    t = open_term(live_url, m)
    closed = t.control_message("closed")
    assert closed["code"] == 4502 and "not answering" in closed["message"]
    assert t.close_code()[0] == 4502
    # The page was shown nothing, so review lists no recording for this try.
    assert not Recording.objects.filter(attempt=m.attempt).exists()
    type(m.lease).objects.filter(pk=m.lease.pk).update(port=real_port)
    t = open_term(live_url, m)
    assert t.control_message("ready")
    t.send("echo back''again\r")
    t.read_until("backagain")
    t.close()
    recording = wait_for(lambda: Recording.objects.filter(attempt=m.attempt, ended_at__isnull=False).first())
    assert Recording.objects.filter(attempt=m.attempt).count() == 1 and recording.bytes_out > 0


def test_another_expert_and_anonymous_users_are_refused(live_url, machine_attempt):
    path = f"/ws/attempts/{machine_attempt.attempt.pk}/terminals/main/"
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(live_url, path, user=factories.user())
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        ws_connect(live_url, path)
    with pytest.raises(InvalidStatus):  # another site's page cannot use the expert's cookie
        ws_connect(live_url, path, user=machine_attempt.expert, origin="http://evil.example")


def test_staff_watch_read_only_and_take_over_explicitly(live_url, machine_attempt):
    m = machine_attempt
    expert = open_term(live_url, m)
    expert.send("echo expert-was-here\r")
    expert.read_until("expert-was-here\r\n")
    staff = factories.user(staff=True)
    watcher = open_term(live_url, m, user=staff)
    assert watcher.control_message("ready")["read_only"] is True
    watcher.read_until("expert-was-here")
    watcher.send("echo staff-typed\r")
    assert "read-only" in watcher.control_message("error")["message"]
    watcher.close()
    assert not AuditEvent.objects.filter(action="terminal.takeover").exists()
    taker = open_term(live_url, m, user=staff, query="cols=80&rows=24&takeover=1")
    assert taker.control_message("ready")["read_only"] is False
    taker.send("echo staff-took-over\r")
    expert.read_until("staff-took-over\r\n")
    event = AuditEvent.objects.get(action="terminal.takeover")
    assert event.actor == staff and event.attempt_id == m.attempt.pk
    taker.close()
    expert.close()


def test_the_end_of_the_attempt_closes_open_terminals_with_a_message(live_url, machine_attempt):
    t = open_term(live_url, machine_attempt)
    t.control_message("ready")
    push_event(machine_attempt.attempt.pk, "ended", {"message": "Time is up."})
    code, reason = t.close_code()
    assert (code, reason) == (4000, "Time is up.")
    assert t.control_message("closed", timeout=0.1)["message"] == "Time is up."


def test_a_paused_or_ended_attempt_does_not_open(live_url, machine_attempt):
    from baseliner.attempts.services import attempt_mark_ended

    attempt_mark_ended(attempt=machine_attempt.attempt, reason="expert")
    t = open_term(live_url, machine_attempt)
    code, reason = t.close_code()
    assert code == 4000 and "ended" in reason


def test_score_and_clock_events_become_markers(live_url, machine_attempt):
    t = open_term(live_url, machine_attempt)
    t.control_message("ready")
    push_event(machine_attempt.attempt.pk, "score", {"label": "score 0.42"})
    push_event(machine_attempt.attempt.pk, "warning", {"message": "15 minutes left"})
    push_event(machine_attempt.attempt.pk, "provisioning", {"message": "ignored"})
    t.send("echo after-markers\r")
    t.read_until("after-markers\r\n")
    time.sleep(0.3)
    t.close()
    recording = wait_for(lambda: Recording.objects.filter(attempt=machine_attempt.attempt, ended_at__isnull=False).first())
    _, events = read_asciicast(recording_path(recording))
    assert [e[2] for e in events if e[1] == "m"] == ["score: score 0.42", "warning: 15 minutes left"]


def test_malformed_frames_get_an_error_and_the_terminal_keeps_working(live_url, machine_attempt):
    t = open_term(live_url, machine_attempt)
    t.control_message("ready")
    for bad, expected in (("not json", "JSON"), ("[1, 2]", "JSON"), ('{"type": "ack", "bytes": -5}', "non-negative"),
                          ('{"type": "resize", "cols": "x", "rows": 3}', "whole numbers"),
                          ('{"type": "resize", "cols": 99999, "rows": 3}', "cols must be"),
                          ('{"type": "launch"}', "unknown control message")):
        t.ws.send(bad)
        assert expected in t.control_message("error")["message"]
    t.ws.send(json.dumps({"type": "resize", "cols": 120, "rows": 40}))
    t.send("stty size\r")
    t.read_until("40 120")
    t.close()


def test_a_10_mb_paste_arrives_whole(live_url, machine_attempt):
    t = open_term(live_url, machine_attempt)
    t.send("stty -echo; wc -c; stty echo\r")
    time.sleep(0.5)
    line = b"a" * 999 + b"\r"
    t.ws.send(line * 10_000)  # one 10 MB frame; \r becomes \n in the tty
    t.send("\x04")
    t.read_until("10000000", timeout=60)
    t.close()


def test_a_flood_of_output_is_sent_in_batches_and_all_of_it_is_shown_and_recorded(live_url, machine_attempt):
    # While output keeps coming the bridge sends (and records) what has arrived OUTPUT_EVERY after
    # its last send, not once per SSH packet: tmux repaints in packets of tens of bytes, and each
    # one cost a WebSocket frame, a recording event and a turn of the event loop (half the web
    # process's CPU per MB of a `cat`: bench/RESULTS.md). Nothing is lost or reordered.
    from baseliner.workspace.bridge import ECHO_WINDOW, OUTPUT_EVERY

    m = machine_attempt
    t = open_term(live_url, m)
    t.control_message("ready")
    command = "seq 1 300000; echo flood-''done"
    t.send(command + "\r")
    t.read_until("flood-done", timeout=60)
    t.send("echo after-''flood\r")
    t.read_until("after-flood")
    t.close()
    assert re.search(rb"\n300000(\x1b\[K)?\r\n", t.out)  # the last line of the flood, on screen

    recording = wait_for(lambda: Recording.objects.filter(attempt=m.attempt, ended_at__isnull=False).first())
    _, events = read_asciicast(recording_path(recording))
    output = [e for e in events if e[1] == "o"]
    text, ends = "", []
    for e in output:
        text += e[2]
        ends.append(len(text))
    last_line = re.search(r"\n300000(\x1b\[K)?\r\n", text).start()
    typed, done = text.index(command) + len(command), text.index("flood-done")
    assert typed < last_line < done < text.index("after-flood")
    # the events from the one after the typed command's echo to the one that ends the flood,
    # less those right after its Enter (ECHO_WINDOW: what follows a keystroke goes at once)
    enter = max(e[0] for e in events if e[1] == "i" and e[0] <= output[bisect.bisect_left(ends, done + 1)][0])
    first = bisect.bisect_right(ends, typed)
    while output[first + 1][0] <= enter + ECHO_WINDOW + 0.005:
        first += 1
    flood = output[first:bisect.bisect_left(ends, done + 1) + 1]
    span = flood[-1][0] - flood[0][0]
    assert span > 10 * OUTPUT_EVERY, "the flood was too short to show anything"
    # Each send waits until OUTPUT_EVERY after the one before it ended (its command-log
    # database calls included), as the event loop's timers keep it: uvloop's are whole
    # milliseconds, so a wait may end up to about one early.
    gaps = sorted(b[0] - a[0] for a, b in zip(flood, flood[1:]))
    assert gaps[0] >= OUTPUT_EVERY - 0.0015
    assert len(flood) <= span / (OUTPUT_EVERY - 0.0015) + 1


def test_a_keystroke_is_echoed_at_once_while_the_terminal_prints(machine_attempt, monkeypatch):
    # While output keeps coming (a training run's log) it goes out in batches; an echo must not
    # wait for the rest of one. The bridge itself (in this process), with batches stretched to
    # 2 s: an echo that waited would take a second on average, and the stream between
    # keystrokes stays batched.
    import asyncio

    from baseliner.workspace import bridge as bridge_module
    from baseliner.workspace.machine import machine_info

    monkeypatch.setattr(bridge_module, "OUTPUT_EVERY", 2.0)
    machine = machine_info(attempt=machine_attempt.attempt)

    async def scenario():
        shown, sends, changed = bytearray(), [], asyncio.Event()

        async def send_bytes(data):
            shown.extend(data)
            sends.append(time.monotonic())
            changed.set()

        async def seen(test, timeout=15):
            async with asyncio.timeout(timeout):
                while not test():
                    changed.clear()
                    await changed.wait()

        async def nothing(*args):
            return None

        bridge = bridge_module.TerminalBridge(
            machine=machine, attempt_id=machine_attempt.attempt.pk, terminal="stream", read_only=False,
            cols=80, rows=24, user=machine_attempt.expert, send_bytes=send_bytes, send_json=nothing, on_exit=nothing)
        echoes = []
        try:
            await bridge.start()
            await bridge.input(b"while :; do echo tick; sleep 0.02; done\r")
            await seen(lambda: shown.count(b"tick") >= 3)  # the stream is on, in 2 s batches
            for key in b"QXZ":
                await asyncio.sleep(0.3)
                since, t0 = len(shown), time.monotonic()
                await bridge.input(bytes([key]))
                await seen(lambda: bytes([key]) in shown[since:], timeout=5)
                echoes.append((t0, time.monotonic() - t0))
        finally:
            await bridge.input(b"\x03")
            await bridge.stop()
        return echoes, sends

    echoes, sends = async_test(scenario)()
    assert max(took for _, took in echoes) < 0.5, echoes
    # between keystrokes (after the echo window) the stream was still held for its batch
    for (t0, took), (t1, _) in zip(echoes, echoes[1:]):
        assert not [t for t in sends if t0 + took + 0.1 < t < t1], "output between keystrokes was not batched"


def test_bad_terminal_names_and_sizes_are_refused_with_a_reason(live_url, machine_attempt):
    t = open_term(live_url, machine_attempt, name="bad.name")
    assert t.close_code()[0] == 4400
    t = open_term(live_url, machine_attempt, query="cols=0&rows=0")
    code, reason = t.close_code()
    assert code == 4400 and "cols must be" in reason


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="per-lease Unix users need root")
def test_a_machine_prepared_by_the_local_provider_logs_commands(live_url, settings):
    """The whole path: Start -> the local provider prepares the machine and runs our
    preparation hook -> the browser terminal's commands reach the command log."""
    import secrets
    import shutil

    from provisioning import base
    from provisioning.local import LocalProvider
    from tests.machines_helpers import make_environment_folder, new_attempt, start, teardown_all

    folder = f"/tmp/bl-h4-local-{secrets.token_hex(4)}"
    settings.MACHINE_PROVIDER = "local"
    settings.LOCAL_SSHD_DIR = f"{folder}/sshd"
    settings.ENVIRONMENTS_DIR = __import__("pathlib").Path(folder) / "environments"
    settings.ENVIRONMENTS_DIR.mkdir(parents=True)
    base.get_provider.cache_clear()
    try:
        attempt = new_attempt(source_path=make_environment_folder(settings.ENVIRONMENTS_DIR))
        lease = start(attempt)
        assert lease.nonce and attempt.state == "running"
        t = Term(ws_connect(live_url, f"/ws/attempts/{attempt.pk}/terminals/main/?cols=80&rows=24", user=attempt.expert))
        t.send("cat solve.py; (exit 7)\r")
        t.read_until("starting solution")
        record = wait_for(lambda: CommandRecord.objects.filter(attempt=attempt, exit_status=7).first())
        assert (record.command, record.cwd) == ("cat solve.py; (exit 7)", lease.provider_state["home"])
        t.close()
    finally:
        teardown_all()
        LocalProvider().sshd().stop()
        base.get_provider.cache_clear()
        shutil.rmtree(folder, ignore_errors=True)


def test_a_keystroke_after_the_deadline_ends_the_attempt_and_closes_the_terminal(live_url, machine_attempt):
    """Enforcement on every message, even with no sweeper or worker running: the socket knows the
    deadline, and the first keystroke past it ends the attempt (reason: timeout)."""
    from baseliner.attempts import clock
    from baseliner.attempts.models import Attempt
    from baseliner.attempts.states import EndReason, State

    attempt = Attempt.objects.get(pk=machine_attempt.attempt.pk)
    limit = (clock.now() - attempt.started_at).total_seconds() + 3
    attempt.time_limit_seconds = int(limit) + 1
    attempt.deadline_at = clock.deadline(attempt)
    attempt.save(update_fields=["time_limit_seconds", "deadline_at"])
    t = open_term(live_url, machine_attempt)
    t.control_message("ready")
    t.ws.send(b"echo before\r")
    t.read_until("before")
    time.sleep(max(0.0, (attempt.deadline_at - clock.now()).total_seconds()) + 0.5)
    t.ws.send(b"echo after\r")
    code, reason = t.close_code()
    assert code == 4000 and reason.startswith("Time is up")
    attempt.refresh_from_db()
    assert (attempt.state, attempt.end_reason) == (State.ENDED, EndReason.TIMEOUT)


def test_a_terminal_stops_quick_acks_once_its_shell_is_open_and_the_editor_keeps_them(machine_attempt):
    # The bridge itself (in this process, no web server): with 200 experts typing, quick ACKs
    # on every read of a terminal doubled the echo p99 (bench/RESULTS.md, "Nagle"), while a
    # login or an editor's short command needs them to miss the 40 ms delayed-ACK timer.
    import asyncio

    from baseliner.workspace.bridge import TerminalBridge
    from baseliner.workspace.machine import expert_client, machine_info

    machine = machine_info(attempt=machine_attempt.attempt)

    async def scenario():
        shown, done = bytearray(), asyncio.Event()

        async def send_bytes(data):
            shown.extend(data)
            if b"bridgeok" in shown:  # the output, not the echoed command
                done.set()

        async def nothing(*args):
            return None

        bridge = TerminalBridge(machine=machine, attempt_id=machine_attempt.attempt.pk, terminal="main",
                                read_only=False, cols=80, rows=24, user=machine_attempt.expert,
                                send_bytes=send_bytes, send_json=nothing, on_exit=nothing)
        try:
            await bridge.start()
            assert bridge.client.get_transport().sock.quick_acks is False
            await bridge.input(b"echo bridge''ok\r")
            await asyncio.wait_for(done.wait(), 15)
        finally:
            await bridge.stop()

    # On a thread of its own: after a browser test, Playwright keeps a loop running on this one.
    async_test(scenario)()
    editor = expert_client(machine=machine)
    try:
        assert editor.get_transport().sock.quick_acks
    finally:
        editor.close()
