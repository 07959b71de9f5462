"""
Subprocesses the tests and the benchmarks start, kill and restart: the ASGI server (uvicorn),
a Celery worker, and any other server that listens on a port (the bench's webssh).

Standard library only (no pytest, no Django), so ``tests/conftest.py`` and ``bench/`` share it.
Every class takes ``env``, a callable that returns the subprocess's environment, called at each
(re)start; logs are appended to ``log_path`` across restarts.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

Env = Callable[[], dict]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_env(db: dict, **extra) -> dict:
    """Environment for a server/worker subprocess on the database described by ``db`` (a Django
    ``connection.settings_dict``, e.g. the test database) with the test settings."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="baseliner.settings_test",
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        PYTHONUNBUFFERED="1",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0, *, interval: float = 0.1,
                  log_path: Path | None = None) -> None:
    """Wait until something listens on ``port``; fail at once if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = f": {log_path.read_text(errors='replace')[-2000:]}" if log_path is not None else ""
            raise RuntimeError(f"process exited early with {proc.returncode}{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(interval)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


class ListeningProcess:
    """A subprocess that serves on ``port``: ``start()`` returns once it listens."""

    def __init__(self, args: Sequence[str], port: int, log_path: Path, *, env: Env | None = None, cwd: Path = ROOT,
                 new_session: bool = False, start_timeout: float = 30.0, poll_interval: float = 0.1,
                 stop_timeout: float = 10.0):
        self.args, self.port, self.log_path = list(args), port, Path(log_path)
        self.env = env or (lambda: dict(os.environ))
        self.cwd, self.new_session = cwd, new_session
        self.start_timeout, self.poll_interval, self.stop_timeout = start_timeout, poll_interval, stop_timeout
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, cwd=self.cwd, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=self.new_session)
        wait_for_port(self.port, self.proc, self.start_timeout, interval=self.poll_interval, log_path=self.log_path)

    def kill(self) -> None:
        """SIGKILL (a crash)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), SIGKILL after ``stop_timeout`` seconds."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class ServerProcess(ListeningProcess):
    """baseliner's ASGI app under uvicorn, started as production starts it (``baseliner.serve``:
    with ``--workers``, each worker on a socket of its own); ``app``/``app_dir`` pick another
    ASGI module, as the bench's ``_asgi.py`` does; ``extra_args`` go to uvicorn."""

    def __init__(self, port: int, log_path: Path, env: Env | None = None, *, app: str = "baseliner.asgi:application",
                 app_dir: Path | None = None, extra_args: Sequence[str] = (), **kw):
        args = [sys.executable, "-m", "baseliner.serve", app, *(["--app-dir", str(app_dir)] if app_dir else []),
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *extra_args]
        super().__init__(args, port, log_path, env=env, **kw)


class WorkerProcess:
    """A Celery worker subprocess (prefork, in its own process group) that tests may kill (a
    crash) and restart; with ``beat``, Celery beat runs inside it."""

    def __init__(self, log_path: Path, beat: bool = False, env: Env | None = None, concurrency: int = 2,
                 name: str = "test"):
        self.log_path, self.beat, self.proc = Path(log_path), beat, None
        self.env = env or (lambda: dict(os.environ))
        self.concurrency, self.name, self.node = concurrency, name, ""

    def start(self) -> None:
        # The node name is this start's own, so a control reply (inspect) can be told apart from
        # another worker's on the same broker.
        self.node = f"{self.name}-{os.getpid()}-{free_port()}"
        cmd = [sys.executable, "-m", "celery", "-A", "baseliner", "worker", "--loglevel=INFO",
               f"--concurrency={self.concurrency}", "--pool=prefork", "-n", f"{self.node}@%h",
               "--without-gossip", "--without-mingle"]
        if self.beat:
            cmd += ["--beat", "--schedule", str(self.log_path.with_suffix(".beat"))]
        log = open(self.log_path, "ab")
        # The log is appended to across restarts: only a "ready." written after this start counts.
        offset = log.tell()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited: {self.log()[-2000:]}")
            if b" ready." in self.log_path.read_bytes()[offset:]:
                return
            time.sleep(0.2)
        raise TimeoutError("celery worker did not become ready")

    def running_tasks(self, app, timeout: float = 1.0) -> list[dict]:
        """The tasks this worker's pool is running now (Celery's remote control ``inspect``)."""
        replies = app.control.inspect(timeout=timeout).active() or {}
        return [task for node, tasks in replies.items() if node.split("@")[0] == self.node for task in tasks or []]

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once (a crash, an OOM kill, a lost VM)."""
        self._signal_group(signal.SIGKILL)

    def stop(self) -> None:
        if self._signal_group(signal.SIGTERM):
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig) -> bool:
        if not self.proc or self.proc.poll() is not None:
            return False
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return False
        if sig == signal.SIGKILL:
            self.proc.wait(10)
        return True

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
