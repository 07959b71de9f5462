"""
Shared pieces of the benchmarks (scripts, not tests): the machine they ran on, a loopback
OpenSSH server with throw-away Unix users, terminal clients that speak each contender's real
protocol, and the statistics.

Every contender is driven through the same asyncio ``Session`` interface, so one benchmark
client measures all of them the same way:

    direct OpenSSH   `ssh -tt` in a pseudo-terminal (the floor for any terminal here)
    direct paramiko  paramiko's SSHClient + invoke_shell (the library baseliner and webssh use)
    webssh           webssh 1.6.3 (tornado + paramiko) in its own venv, over its HTTP POST + WebSocket
    baseliner        the attempt's terminal WebSocket (session cookie, Origin, acks)

Only loopback addresses are ever used; every loop is bounded in count and time.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import platform
import pty
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from baseliner.devtools.processes import ListeningProcess  # noqa: E402
from provisioning.sshd import LoopbackSshd, free_port  # noqa: E402

# `timeout` or Ctrl-C must still run the clean-up (users, sshd, servers, scratch database).
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

PROMPT = b"bench$ "
BASHRC = "PS1='bench$ '\nHISTFILE=/dev/null\n"
WEBSSH_VENV = ROOT / ".envs" / "webssh"
ASYNCSSH_DIR = ROOT / ".envs" / "asyncssh"


# --- the machine ----------------------------------------------------------------------------
def machine_facts() -> dict:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "openssh": subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip(),
        "python": platform.python_version(),
    }


def load() -> str:
    """The 1, 5 and 15 minute load averages: every figure is printed next to them."""
    a, b, c = os.getloadavg()
    return f"load {a:.2f} {b:.2f} {c:.2f}"


def command_line() -> str:
    return " ".join([Path(sys.executable).name, *sys.argv])


# --- statistics -----------------------------------------------------------------------------
def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def ms(x: float) -> str:
    return f"{x * 1000:.2f}"


# --- the machine side: sshd and users -------------------------------------------------------
@dataclass
class BenchUser:
    name: str
    home: str


@dataclass
class BenchHost:
    """A loopback sshd (as root) and throw-away users that all accept one key. Files made
    for the throughput runs live in each user's home."""

    n_users: int = 1
    big_mb: int = 200
    burst_bytes: int = 2_000_000
    # >0: the sshd (and so every session, tmux server, shell and `cat` it forks) runs at this
    # niceness: the experts' machines yield the CPUs to the web server and the load generator,
    # as machines of their own would (concurrency.py --machines-nice)
    machines_nice: int = 0
    users: list[BenchUser] = field(default_factory=list)

    def __enter__(self) -> "BenchHost":
        from provisioning import ssh

        if os.geteuid() != 0:
            raise SystemExit("the benchmarks create Unix users: run them as root")
        self.tag = secrets.token_hex(3)
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{self.tag}-"))
        self.sshd = LoopbackSshd(self.dir / "sshd")
        self.sshd.start()
        if self.machines_nice:
            os.setpriority(os.PRIO_PROCESS, self.sshd.pid(), self.machines_nice)
            if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1":
                # every sshd login and tmux server is a session, so a scheduling group, of its
                # own: niceness does not reach across groups (bench/RESULTS.md, the echo legs)
                print("warning: kernel.sched_autogroup_enabled=1: --machines-nice has no effect", file=sys.stderr)
        self.key, self.pub = ssh.generate_key()
        self.key_path = self.dir / "id_ed25519"
        self.key_path.write_text(self.key)
        self.key_path.chmod(0o600)
        self.known_hosts = self.dir / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.sshd.port} {self.sshd.host_key}\n")
        # The big file is shared (one copy, readable by all) so that 400 users cost no disk.
        self.big = self.dir / "big.txt"
        self.burst = self.dir / "burst.txt"
        printable_file(self.big, self.big_mb * 1_000_000)
        printable_file(self.burst, self.burst_bytes)
        self.dir.chmod(0o755)
        try:
            self.add_users(self.n_users)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def add_users(self, n: int) -> None:
        for i in range(len(self.users), n):
            name = f"bb{self.tag}u{i}"
            for attempt in range(20):  # other helpers' tests add users too: /etc/passwd may be locked
                r = subprocess.run(["useradd", "-m", "-p", "*", "-s", "/bin/bash", name], capture_output=True, text=True)
                if r.returncode == 0:
                    break
                time.sleep(0.1 * (attempt + 1))
            else:
                raise RuntimeError(f"useradd {name}: {r.stderr}")
            home = f"/home/{name}"
            self.users.append(BenchUser(name, home))
            Path(home, ".bashrc").write_text(BASHRC)
            Path(home, ".bash_profile").write_text(". ~/.bashrc\n")
            self.sshd.authorize(name, self.pub)

    def __exit__(self, *exc) -> None:
        for user in self.users:
            subprocess.run(["pkill", "-KILL", "-u", user.name], capture_output=True)
        self.sshd.stop()
        for user in self.users:
            for attempt in range(20):
                r = subprocess.run(["userdel", "-r", "-f", user.name], capture_output=True, text=True)
                if r.returncode in (0, 6):  # 6: no such user
                    break
                time.sleep(0.1 * (attempt + 1))
        shutil.rmtree(self.dir, ignore_errors=True)

    def sshd_children_cpu(self) -> float:
        """CPU seconds of every sshd session process (not the listener's own)."""
        total = 0.0
        pid = self.sshd.pid()
        if pid is None:
            return 0.0
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.name().startswith("sshd"):
                    t = child.cpu_times()
                    total += t.user + t.system
        return total


def printable_file(path: Path, size: int) -> None:
    """``size`` bytes of 100-character lines of varied printable text (what a log looks like)."""
    import base64
    import random

    rng = random.Random(1)
    block = bytearray()
    while len(block) < 1 << 20:
        block += base64.b64encode(rng.randbytes(74))[:99] + b"\n"
    with open(path, "wb") as f:
        left = size
        while left > 0:
            chunk = bytes(block[: min(left, len(block))])
            f.write(chunk)
            left -= len(chunk)
    path.chmod(0o644)


# --- a terminal session, whatever carries it ------------------------------------------------
class SessionClosed(Exception):
    pass


class Session:
    """Output arrives through ``_feed``; ``wait_for`` waits for a pattern in what arrived since
    a mark. Subclasses implement ``_send`` and ``close``."""

    def __init__(self):
        self.buf = bytearray()
        self.base = 0  # bytes dropped from the front of buf
        self.received = 0
        self.event = asyncio.Event()
        self.closed = False
        self.keep_all = False
        self.all_output = bytearray()

    def _feed(self, data: bytes) -> None:
        self.received += len(data)
        if self.keep_all:
            self.all_output += data
        self.buf += data
        if len(self.buf) > 1 << 16:  # keep a tail only: patterns are short
            drop = len(self.buf) - 4096
            del self.buf[:drop]
            self.base += drop
        self.event.set()

    def _closed(self) -> None:
        self.closed = True
        self.event.set()

    def mark(self) -> int:
        return self.received

    async def wait_for(self, pattern: bytes | re.Pattern, since: int, timeout: float) -> float:
        """Wait until ``pattern`` appears in output received after ``since``; returns the time."""
        deadline = time.monotonic() + timeout
        while True:
            start = max(since - self.base, 0)
            hay = bytes(self.buf[start:])
            found = pattern.search(hay) if isinstance(pattern, re.Pattern) else (pattern in hay)
            if found:
                return time.monotonic()
            if self.closed:
                raise SessionClosed(f"the session closed: {getattr(self, 'close_message', None)}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError(f"no {pattern!r} within {timeout}s")
            self.event.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.event.wait(), min(left, 1.0))

    async def wait_output(self, since: int, timeout: float) -> float:
        """Wait for any output after ``since`` (a keystroke's echo)."""
        deadline = time.monotonic() + timeout
        while self.received <= since:
            if self.closed:
                raise SessionClosed(f"the session closed: {getattr(self, 'close_message', None)}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError("no echo")
            self.event.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.event.wait(), left)
        return time.monotonic()

    async def quiet(self, gap: float = 0.15, timeout: float = 10.0) -> None:
        """Wait until no output arrived for ``gap`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self.received
            await asyncio.sleep(gap)
            if self.received == n:
                return

    async def send(self, data: bytes) -> None:
        await self._send(data)

    async def _send(self, data: bytes) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def pty_process(args: list[str], cols: int = 80, rows: int = 24, env: dict | None = None) -> tuple[subprocess.Popen, int]:
    """``args`` on a new pty of ``cols`` x ``rows`` that is its controlling terminal, as a terminal
    emulator starts a program; the process and the pty's master fd (ours to read and close)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=env,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0), close_fds=True)
    os.close(slave)
    return proc, master


# --- direct OpenSSH client in a pty ----------------------------------------------------------
class OpenSSHSession(Session):
    """`ssh -tt` with its stdin/stdout on a pty we own, as a user's terminal emulator would."""

    def __init__(self, host: BenchHost, user: BenchUser, command: str | None = None):
        super().__init__()
        self.host, self.user, self.command = host, user, command

    async def open(self) -> None:
        args = ["ssh", "-tt", "-i", str(self.host.key_path), "-p", str(self.host.sshd.port),
                "-o", f"UserKnownHostsFile={self.host.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", f"{self.user.name}@127.0.0.1"]
        if self.command:
            args.append(self.command)
        self.proc, master = pty_process(args)
        self.fd = master
        os.set_blocking(master, False)
        asyncio.get_running_loop().add_reader(master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.fd)
            self._closed()
            return
        self._feed(data)

    async def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
                view = view[n:]
            except BlockingIOError:
                await asyncio.sleep(0.001)

    def server_pids(self) -> list[int]:
        return [self.proc.pid]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.fd)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        with contextlib.suppress(OSError):
            self.proc.terminate()
        await asyncio.to_thread(self.proc.wait, 5)


# --- direct paramiko ------------------------------------------------------------------------
class ParamikoSession(Session):
    """paramiko SSHClient + invoke_shell, read on the event loop like a bridge would."""

    def __init__(self, host: BenchHost, user: BenchUser, command: str | None = None):
        super().__init__()
        self.host, self.user, self.command = host, user, command

    def _connect(self):
        from provisioning import ssh

        client = ssh.connect(address="127.0.0.1", port=self.host.sshd.port, username=self.user.name,
                             private_key=self.host.key, host_key=self.host.sshd.host_key)
        chan = client.get_transport().open_session()
        chan.get_pty(term="xterm-256color", width=80, height=24)
        if self.command:
            chan.exec_command(self.command)
        else:
            chan.invoke_shell()
        chan.fileno()
        return client, chan

    async def open(self) -> None:
        self.client, self.chan = await asyncio.to_thread(self._connect)
        self.fd = self.chan.fileno()
        asyncio.get_running_loop().add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        chan = self.chan
        while chan.recv_ready():
            data = chan.recv(1 << 16)
            if not data:
                break
            self._feed(data)
        if chan.closed or (chan.eof_received and not chan.recv_ready()):
            asyncio.get_running_loop().remove_reader(self.fd)
            self._closed()

    async def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.chan.send_ready():
                n = self.chan.send(bytes(view[:32768]))
                view = view[n:]
            else:
                await asyncio.sleep(0.001)

    def server_pids(self) -> list[int]:
        return [os.getpid()]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.fd)
        await asyncio.to_thread(self.client.close)


# --- direct asyncssh ------------------------------------------------------------------------
class AsyncsshSession(Session):
    """asyncssh (an asyncio SSH client: no thread per connection), output delivered by the
    event loop straight into ``_feed``, as a bridge built on it would."""

    def __init__(self, host: BenchHost, user: BenchUser, command: str | None = None):
        super().__init__()
        self.host, self.user, self.command = host, user, command

    async def open(self) -> None:
        if str(ASYNCSSH_DIR) not in sys.path:  # bench/setup_peers.sh puts it there, not in the app's venv
            sys.path.append(str(ASYNCSSH_DIR))
        import asyncssh

        outer = self

        class _Client(asyncssh.SSHClientSession):
            def data_received(self, data, datatype):
                outer._feed(data)

            def connection_lost(self, exc):
                outer._closed()

        known = asyncssh.import_known_hosts(f"[127.0.0.1]:{self.host.sshd.port} {self.host.sshd.host_key}\n")
        self.conn = await asyncssh.connect(
            "127.0.0.1", self.host.sshd.port, username=self.user.name, known_hosts=known,
            client_keys=[asyncssh.import_private_key(self.host.key)], agent_path=None, config=None)
        self.chan, _ = await self.conn.create_session(
            _Client, self.command, term_type="xterm-256color", term_size=(80, 24), encoding=None)

    async def _send(self, data: bytes) -> None:
        self.chan.write(data)

    def server_pids(self) -> list[int]:
        return [os.getpid()]

    async def close(self) -> None:
        self.conn.close()
        with contextlib.suppress(Exception):
            await self.conn.wait_closed()


# --- minimal async HTTP (webssh's POST, baseliner's login) ----------------------------------
async def http_request(port: int, method: str, path: str, *, body: bytes = b"", headers: dict | None = None,
                       timeout: float = 30.0) -> tuple[int, dict, bytes]:
    """One HTTP/1.1 request to 127.0.0.1:port; returns (status, headers (lower-case, lists), body)."""
    async def go():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            h = {"Host": f"127.0.0.1:{port}", "Connection": "close", "Content-Length": str(len(body))}
            h.update(headers or {})
            head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs: dict[str, list[str]] = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs.setdefault(k.strip().lower(), []).append(v.strip())
        if "chunked" in ",".join(hdrs.get("transfer-encoding", [])):
            out, data = bytearray(), rest
            while data:
                size_line, _, data = data.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    break
                out += data[:size]
                data = data[size + 2:]
            rest = bytes(out)
        return status, hdrs, rest

    return await asyncio.wait_for(go(), timeout)


def cookies_from(headers: dict) -> dict:
    jar = {}
    for line in headers.get("set-cookie", []):
        k, _, v = line.split(";", 1)[0].partition("=")
        jar[k.strip()] = v.strip()
    return jar


# --- webssh ---------------------------------------------------------------------------------
class WebsshServer:
    """webssh 1.6.3 from PyPI, in its own venv (.envs/webssh), host key pinned (policy reject),
    XSRF on (its default). The encoding is given (utf-8) so that each login skips webssh's
    ``locale charmap`` probe: the configuration most favourable to webssh."""

    def __init__(self, host: BenchHost, log_dir: Path):
        self.host, self.port = host, free_port()
        self.log_path = log_dir / "webssh.log"
        wssh = WEBSSH_VENV / "bin" / "wssh"
        self.server = ListeningProcess(
            [str(wssh), "--address=127.0.0.1", f"--port={self.port}", "--policy=reject",
             f"--hostfile={self.host.known_hosts}", "--encoding=utf-8", "--maxconn=10000",
             "--logging=warning", "--fbidhttp=False", "--xheaders=False"],
            self.port, self.log_path, new_session=True, start_timeout=20)

    def start(self) -> None:
        if not (WEBSSH_VENV / "bin" / "wssh").exists():
            raise SystemExit(f"{WEBSSH_VENV / 'bin' / 'wssh'} is missing: bash bench/setup_peers.sh installs webssh 1.6.3 into .envs/webssh")
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def proc(self):
        return self.server.proc

    @property
    def pid(self) -> int:
        return self.server.pid


class WebsshSession(Session):
    """webssh's browser protocol: GET / (XSRF cookie), POST / with the form (hostname, port,
    username, privatekey, term, _xsrf) -> {"id": ...}, then ws://.../ws?id=...; keystrokes go
    as JSON ``{"data": "..."}``, output arrives in binary frames."""

    def __init__(self, server: WebsshServer, user: BenchUser):
        super().__init__()
        self.server, self.user = server, user

    async def open(self) -> None:
        import websockets

        port = self.server.port
        _, hdrs, _ = await http_request(port, "GET", "/")
        jar = cookies_from(hdrs)
        form = urlencode({
            "hostname": "127.0.0.1", "port": str(self.server.host.sshd.port), "username": self.user.name,
            "password": "", "privatekey": self.server.host.key, "passphrase": "", "totp": "",
            "term": "xterm-256color", "_xsrf": jar.get("_xsrf", ""),
        }).encode()
        status, _, body = await http_request(port, "POST", "/", body=form, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"_xsrf={jar.get('_xsrf', '')}",
            "Origin": f"http://127.0.0.1:{port}", "Referer": f"http://127.0.0.1:{port}/"})
        result = json.loads(body)
        if status != 200 or not result.get("id"):
            raise RuntimeError(f"webssh login failed: {status} {result.get('status')}")
        self.ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws?id={result['id']}",
                                           origin=f"http://127.0.0.1:{port}", max_size=None, compression=None,
                                           ping_interval=None)
        await self.ws.send(json.dumps({"resize": [80, 24]}))
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if isinstance(msg, bytes):
                    self._feed(msg)
        except Exception:
            pass
        self._closed()

    async def _send(self, data: bytes) -> None:
        await self.ws.send(json.dumps({"data": data.decode()}))

    def server_pids(self) -> list[int]:
        return [self.server.pid]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        self.reader.cancel()
        with contextlib.suppress(BaseException):
            await self.reader


# --- baseliner ------------------------------------------------------------------------------
class BaselinerSession(Session):
    """The terminal WebSocket of an attempt: ``/ws/attempts/<id>/terminals/<name>/`` with the
    expert's session cookie and the page's Origin. Output is acknowledged once processed,
    as the page does after xterm.js has processed it (every 64 KB or after 50 ms)."""

    def __init__(self, *, port: int, attempt_id: int, terminal: str, sessionid: str, server_pid: int | None = None,
                 ack_bytes: int = 64 * 1024):
        super().__init__()
        self.port, self.attempt_id, self.terminal, self.sessionid = port, attempt_id, terminal, sessionid
        self.server_pid, self.ack_bytes = server_pid, ack_bytes
        self.ready = asyncio.Event()
        self.close_message = None

    async def open(self) -> None:
        import websockets

        url = f"ws://127.0.0.1:{self.port}/ws/attempts/{self.attempt_id}/terminals/{self.terminal}/?cols=80&rows=24"
        # BENCH_WS_DEFLATE=1 negotiates permessage-deflate, as Chromium does with baseliner's uvicorn.
        compression = "deflate" if os.environ.get("BENCH_WS_DEFLATE") == "1" else None
        self.ws = await websockets.connect(url, origin=f"http://127.0.0.1:{self.port}", max_size=None, compression=compression,
                                           additional_headers={"Cookie": f"sessionid={self.sessionid}"},
                                           ping_interval=None, open_timeout=60)
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        """Acknowledge as the page does (frontend/src/_terminal.js): at 64 KB unacknowledged,
        or 50 ms after the first unacknowledged byte."""
        self.unacked = 0
        self.ack_timer = None
        try:
            async for msg in self.ws:
                if isinstance(msg, bytes):
                    self._feed(msg)
                    self.unacked += len(msg)
                    if self.unacked >= self.ack_bytes:
                        await self._flush_ack()
                    elif self.ack_timer is None:
                        self.ack_timer = asyncio.get_running_loop().call_later(
                            0.05, lambda: asyncio.ensure_future(self._flush_ack()))
                else:
                    event = json.loads(msg)
                    if event.get("type") == "ready":
                        self.ready.set()
                    elif event.get("type") == "closed":
                        self.close_message = event
        except Exception as exc:
            self.close_message = self.close_message or repr(exc)
        if self.close_message is None:
            self.close_message = f"closed by the server: {self.ws.close_code} {self.ws.close_reason}"
        self._closed()

    async def _flush_ack(self) -> None:
        if self.ack_timer is not None:
            self.ack_timer.cancel()
            self.ack_timer = None
        n, self.unacked = self.unacked, 0
        if n:
            with contextlib.suppress(Exception):
                await self.ws.send(json.dumps({"type": "ack", "bytes": n}))

    async def _send(self, data: bytes) -> None:
        await self.ws.send(data)

    def server_pids(self) -> list[int]:
        return [self.server_pid] if self.server_pid else []

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        self.reader.cancel()
        with contextlib.suppress(BaseException):
            await self.reader


# --- process accounting ---------------------------------------------------------------------
def cpu_seconds(pids: list[int], children: bool = True) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            procs = [p] + (p.children(recursive=True) if children else [])
            for q in procs:
                with contextlib.suppress(psutil.Error):
                    t = q.cpu_times()
                    total += t.user + t.system
    return total


def rss_bytes(pids: list[int], children: bool = True) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            procs = [p] + (p.children(recursive=True) if children else [])
            for q in procs:
                with contextlib.suppress(psutil.Error):
                    total += q.memory_info().rss
    return total


def threads(pid: int) -> int:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).num_threads()
    return 0


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
