"""
The terminal bridge: one browser WebSocket <-> one SSH PTY channel running tmux.

Each terminal tab is a named tmux session on the expert's machine (``tmux new-session -A``),
so a reload, a dropped network or a restart of this server reattaches to the same shells.

Output path (machine -> browser), never blocking the event loop:
    channel fileno readable (loop.add_reader) -> if the last send ended under OUTPUT_EVERY
    ago, wait out the rest of it (not within ECHO_WINDOW of a keystroke, which also ends a
    wait) -> recv what is buffered -> strip and parse the
    shell-integration markers -> record ("o") -> binary WebSocket frame.
Flow control, as in xterm.js's guide: the page acknowledges the bytes it has rendered
(``{"type": "ack", "bytes": n}`` after ``term.write(data, callback)``); while more than
HIGH_WATER bytes are unacknowledged the bridge stops reading the channel, so SSH's own
window fills and the machine waits. Reading resumes below LOW_WATER. tmux sits in between,
so a runaway ``yes`` only ever costs screen redraws and Ctrl-C answers at once.
Input path: binary frames -> recorded ("i") -> queued in chunks -> channel.send when the SSH
window has room (a 10 MB paste is sent in pieces, never dropped).
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
import logging
import re
import shlex
from collections.abc import Awaitable, Callable


from baseliner.attempts import clock
from baseliner.recording import services as recording_services
from baseliner.recording.shell import CommandEnd, CommandStart, MarkerParser
from provisioning import ssh

from .machine import MachineInfo, expert_client
from .offload import db, in_ssh_pool

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
HIGH_WATER = 1 << 20
LOW_WATER = 256 << 10
READ_CHUNK = 64 << 10
MAX_BATCH = 256 << 10
INPUT_CHUNK = 16 << 10
SMALL_INPUT = 1024
MAX_PENDING_INPUT = 64 << 20
FLUSH_EVERY = 1.0
# While output keeps coming, send (and record) what has arrived OUTPUT_EVERY seconds after
# the last send ended, not once per SSH packet: tmux repaints in packets of tens of bytes
# (median 38 during a `cat`, 1,300 a second), and each cost a WebSocket frame, a recording
# event and a turn of the loop. 4 ms is under a quarter of a 60 Hz frame, and the first output
# after a quiet spell (a keystroke's echo) still goes at once (bench/RESULTS.md: half the CPU
# per MB, echo unchanged).
OUTPUT_EVERY = 0.004
# ...except right after a keystroke: for ECHO_WINDOW seconds after the expert types, output goes
# the moment it arrives, and a batch already waiting is sent at once, so an echo (or Ctrl-C's
# prompt) never waits behind a stream of output, such as a training run's log, for the rest of
# a batch (bench/RESULTS.md: echo while the terminal prints).
ECHO_WINDOW = 0.025
CONNECT_TIMEOUT = 25.0


def clamp_size(cols, rows) -> tuple[int, int]:
    try:
        cols, rows = int(cols), int(rows)
    except (TypeError, ValueError):
        raise ValueError("cols and rows must be whole numbers") from None
    if not (2 <= cols <= 1000 and 2 <= rows <= 500):
        raise ValueError("cols must be 2-1000 and rows 2-500")
    return cols, rows


def tmux_command(*, machine: MachineInfo, name: str, read_only: bool) -> str:
    """The command the SSH channel runs: attach to (or create) the tmux session ``name``."""
    if not NAME_RE.fullmatch(name):
        raise ValueError("bad terminal name")
    conf, rc = shlex.quote(machine.tmux_conf), shlex.quote(machine.bashrc)
    prefix = 'export LANG="${LANG:-C.UTF-8}"; '
    if read_only:
        return prefix + f"exec tmux -u attach-session -r -t ={name}"
    shell = shlex.quote(f"exec bash --rcfile {rc} -i")
    # A tmux server started elsewhere (the expert's own SSH) did not read our conf: set the
    # one option the command log needs on it too, after attaching.
    return prefix + (
        f"if [ -f {conf} ]; then set -- -f {conf}; else set --; fi; "
        f"exec tmux -u \"$@\" new-session -A -s {name} {shell} \\; set-option -g allow-passthrough on"
    )


def _resolve(waiter: asyncio.Future | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class PageGone(Exception):
    """The browser's socket went away while output was being sent."""


class TerminalBridge:
    """Owns the SSH client/channel, the recording and the command log of one connection."""

    def __init__(self, *, machine: MachineInfo, attempt_id: int, terminal: str, read_only: bool, cols: int, rows: int,
                 user, send_bytes: Callable[[bytes], Awaitable[None]], send_json: Callable[[dict], Awaitable[None]],
                 on_exit: Callable[[], Awaitable[None]]):
        self.machine, self.attempt_id, self.terminal = machine, attempt_id, terminal
        self.read_only, self.cols, self.rows, self.user = read_only, cols, rows, user
        self._send_bytes, self._send_json, self._on_exit = send_bytes, send_json, on_exit
        self.client = self.chan = None
        self.recording = self.writer = None
        self.parser = MarkerParser(machine.nonce) if machine.nonce else None
        self.sent = self.acked = 0
        self.window = asyncio.Event()
        self.window.set()
        self.inq: asyncio.Queue[bytes] = asyncio.Queue()
        self.pending_input = 0
        self.tasks: list[asyncio.Task] = []
        self.fd: int | None = None
        self.loop = asyncio.get_running_loop()
        self._command: tuple[int | None, CommandStart] | None = None
        self._closed = False
        self._executor: ThreadPoolExecutor | None = None
        self._typed_at = float("-inf")  # loop.time() of the last keystroke
        self._batch_wait: asyncio.Future | None = None  # set while the pump waits out a batch

    # --- lifecycle -----------------------------------------------------------------------
    def _open(self):  # in a thread: paramiko blocks
        client = expert_client(machine=self.machine)
        try:
            chan = client.get_transport().open_session(timeout=15)
            chan.get_pty(term="xterm-256color", width=self.cols, height=self.rows)
            chan.set_combine_stderr(True)
            chan.exec_command(tmux_command(machine=self.machine, name=self.terminal, read_only=self.read_only))
            chan.fileno()  # create the pipe now, in this thread
            ssh.interactive(client)
        except Exception:
            client.close()
            raise
        return client, chan

    async def start(self) -> None:
        # The SSH login and the recording's row are independent: both at once (a connect or
        # a reload waits for the slower, not the sum). Nothing is read from the machine
        # before both are there, so the recording still holds every byte the page is sent.
        opened, recording = await asyncio.gather(
            asyncio.wait_for(in_ssh_pool(self._open), CONNECT_TIMEOUT),
            db(recording_services.recording_open)(
                attempt_id=self.attempt_id, terminal=self.terminal, width=self.cols, height=self.rows,
                reader=self.user, read_only=self.read_only,
            ),
            return_exceptions=True,
        )
        if not isinstance(opened, BaseException):
            self.client, self.chan = opened
        if not isinstance(recording, BaseException):
            self.recording, self.writer = recording
        for result in (opened, recording):
            if isinstance(result, BaseException):
                raise result  # the caller's stop() closes what did open
        self.fd = self.chan.fileno()
        self.tasks = [asyncio.create_task(self._pump()), asyncio.create_task(self._flusher())]
        if not self.read_only:
            self.tasks.append(asyncio.create_task(self._input_writer()))

    async def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Before any await: a server shutting down may cancel the rest of stop(), and what the
        # page was already sent must be on disk by then (the recording holds every byte shown).
        if self.writer is not None:
            self.writer.flush()
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()
        await asyncio.gather(*(t for t in self.tasks if t is not current), return_exceptions=True)
        if self.fd is not None:
            self.loop.remove_reader(self.fd)
        chan, client = self.chan, self.client
        if chan is not None or client is not None:
            await in_ssh_pool(self._close_ssh, chan, client)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self.writer is not None:
            if self.tasks:
                await db(recording_services.recording_close)(recording_id=self.recording.pk, writer=self.writer)
            else:  # the machine never answered: nothing was shown, so there is nothing to keep
                await db(recording_services.recording_discard)(recording_id=self.recording.pk, writer=self.writer)

    @staticmethod
    def _close_ssh(chan, client) -> None:
        try:
            if chan is not None:
                chan.close()
        finally:
            if client is not None:
                client.close()

    # --- machine -> browser --------------------------------------------------------------
    async def _pump(self) -> None:
        chan, loop = self.chan, self.loop
        readable = asyncio.Event()
        last = float("-inf")

        def on_readable():
            loop.remove_reader(self.fd)
            readable.set()

        try:
            while True:
                await self.window.wait()
                if not chan.recv_ready():
                    if chan.eof_received or chan.closed:
                        break
                    readable.clear()
                    loop.add_reader(self.fd, on_readable)
                    try:
                        await readable.wait()
                    finally:
                        loop.remove_reader(self.fd)
                    continue
                now = loop.time()
                delay = last + OUTPUT_EVERY - now
                if delay > 0 and now - self._typed_at > ECHO_WINDOW:
                    await self._wait_batch(delay)
                chunks, n = [], 0
                while n < MAX_BATCH and chan.recv_ready():
                    data = chan.recv(READ_CHUNK)
                    if not data:
                        break
                    chunks.append(data)
                    n += len(data)
                if chunks:
                    await self._output(b"".join(chunks))
                    last = loop.time()  # after the command log's database calls too
        except asyncio.CancelledError:
            raise
        except PageGone:
            return  # the socket is closing; disconnect() stops the bridge
        except Exception:
            log.exception("terminal %s of attempt %s: output pump failed", self.terminal, self.attempt_id)
        if self.parser is not None:
            tail = self.parser.flush()
            if tail:
                await self._deliver(tail)
        await self._on_exit()

    async def _wait_batch(self, delay: float) -> None:
        """Wait ``delay`` seconds for more output to send with what is there, or until the
        expert types (``input`` ends the wait: what is buffered goes, and then the echo)."""
        self._batch_wait = waiter = self.loop.create_future()
        timer = self.loop.call_later(delay, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._batch_wait = None

    async def _output(self, data: bytes) -> None:
        if self.parser is not None:
            data, markers = self.parser.feed(data)
            for marker in markers:
                await self._on_marker(marker)
        if data:
            await self._deliver(data)

    async def _deliver(self, data: bytes) -> None:
        self.writer.output(data)
        self.sent += len(data)
        if self.sent - self.acked > HIGH_WATER:
            self.window.clear()
        try:
            await self._send_bytes(data)
        except Exception as exc:
            raise PageGone from exc

    def ack(self, nbytes: int) -> None:
        self.acked = min(self.sent, self.acked + nbytes)
        if self.sent - self.acked <= LOW_WATER:
            self.window.set()

    # --- command log ------------------------------------------------------------------------
    async def _on_marker(self, marker) -> None:
        if self.read_only:
            return  # the expert's own connection logs the commands; a watcher would double them
        try:
            if isinstance(marker, CommandStart):
                record = await db(recording_services.command_start)(
                    attempt_id=self.attempt_id, terminal=self.terminal, marker=f"{self.terminal}:{marker.machine_time:.6f}",
                    started_at=clock.now(), cwd=marker.cwd, command=marker.command,
                )
                self._command = (record.pk if record else None, marker)
            elif isinstance(marker, CommandEnd) and self._command is not None:
                record_id, start = self._command
                self._command = None
                if record_id is not None:
                    await db(recording_services.command_finish)(
                        record_id=record_id, exit_status=marker.exit_status,
                        duration_seconds=marker.machine_time - start.machine_time,
                    )
        except Exception:  # the log must never take the terminal down
            log.exception("terminal %s of attempt %s: could not log a command", self.terminal, self.attempt_id)

    # --- browser -> machine ------------------------------------------------------------------
    async def input(self, data: bytes) -> str | None:
        """Queue keystrokes or a paste; returns an error message for the page, or None."""
        if self.read_only:
            return "This terminal is read-only for you. Use “Take over” to type in it (audited)."
        if self.pending_input + len(data) > MAX_PENDING_INPUT:
            return "Too much input is waiting to be sent to the machine; this paste was not sent."
        self.writer.input(data)
        self._typed()
        if not self.pending_input and self.chan is not None and not self.chan.closed:
            # Nothing queued ahead of it: a keystroke goes straight onto the channel, with no
            # hop through the writer task.
            data = self._send_now(data)
            if not data:
                return None
        for i in range(0, len(data), INPUT_CHUNK):
            chunk = data[i:i + INPUT_CHUNK]
            self.pending_input += len(chunk)
            self.inq.put_nowait(chunk)
        return None

    def _typed(self) -> None:
        """The expert typed: output is sent as it comes for ECHO_WINDOW, starting with what
        a batch is waiting on."""
        self._typed_at = self.loop.time()
        _resolve(self._batch_wait)

    async def _input_writer(self) -> None:
        chan = self.chan
        while True:
            chunk = await self.inq.get()
            if chan.closed:
                return
            rest = self._send_now(chunk)
            if rest:
                await self._send_in_thread(rest)
            self.pending_input -= len(chunk)

    def _send_now(self, data: bytes) -> bytes:
        """Send keystrokes on the event loop when the SSH window has room (paramiko does not
        wait then), for the lowest echo latency; returns what is left for ``_send_in_thread``
        (all of a paste; nothing once the channel has died: the output pump reports that)."""
        if len(data) > SMALL_INPUT or not self.chan.send_ready():
            return data
        try:
            return data[self.chan.send(data):]
        except OSError:
            return b""

    async def _send_in_thread(self, data: bytes) -> None:
        """Pastes: sendall waits for the machine to read, so it runs off the event loop."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"term-{self.terminal}")
        await self.loop.run_in_executor(self._executor, self.chan.sendall, data)

    def resize(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        if self.chan is not None and not self.chan.closed:
            self.chan.resize_pty(width=cols, height=rows)
        self.writer.resize(cols, rows)

    def marker(self, label: str) -> None:
        if self.writer is not None:
            self.writer.marker(label)

    async def _flusher(self) -> None:
        """Write the recording every second. A disk that refuses writes never touches the
        terminal: the writer keeps the events, and staff are told when it starts and stops."""
        reported = None
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            try:
                self.writer.flush()
                if self.writer.error != reported:
                    await db(recording_services.recording_write_state)(
                        recording_id=self.recording.pk, error=self.writer.error)
                    reported = self.writer.error
            except Exception:  # the recording must never take the terminal down
                log.exception("terminal %s of attempt %s: recording trouble", self.terminal, self.attempt_id)
