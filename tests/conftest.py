"""
Shared fixtures. Real components only: the machine's PostgreSQL and Redis, a real ASGI
server (uvicorn) and Celery worker as subprocesses on the test database, and Debian's
Chromium driven by Playwright.

Tests that talk to the server or worker subprocesses must use ``transactional_db``
(the subprocess cannot see data inside a test's open transaction).
"""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from tests import factories  # noqa: F401  (re-exported for convenience)

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("BASELINER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env(**extra) -> dict:
    """Environment for a server/worker subprocess that shares this session's test database."""
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="baseliner.settings_test",
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        PYTHONUNBUFFERED="1",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


class ServerProcess:
    """An ASGI server subprocess that tests may kill and restart (fault tests). ``env`` is a
    callable giving its environment (default: this session's test database and Redis)."""

    def __init__(self, port: int, log_path: Path, env=None, args: tuple[str, ...] = ()):
        self.port, self.log_path, self.proc, self.args = port, log_path, None, tuple(args)
        self.env = env or subprocess_env
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "baseliner.asgi:application", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning", *self.args],
            cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.proc)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def asgi_server(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real uvicorn serving baseliner on the test database, for the whole session."""
    server = ServerProcess(free_port(), tmp_path_factory.mktemp("asgi") / "server.log")
    with django_db_blocker.unblock():
        server.start()
    yield server
    server.stop()


@pytest.fixture
def live_url(asgi_server, transactional_db):
    if asgi_server.proc.poll() is not None:  # a fault test may have left it dead
        asgi_server.start()
    return asgi_server.url


class WorkerProcess:
    """A Celery worker subprocess (prefork) that tests may kill (a crash) and restart."""

    def __init__(self, log_path: Path, beat: bool = False, env=None, concurrency: int = 2, name: str = "test"):
        self.log_path, self.beat, self.proc = log_path, beat, None
        self.env, self.concurrency, self.name = env or subprocess_env, concurrency, name

    def start(self) -> None:
        cmd = [sys.executable, "-m", "celery", "-A", "baseliner", "worker", "--loglevel=INFO",
               f"--concurrency={self.concurrency}", "--pool=prefork", "-n", f"{self.name}-{os.getpid()}-{free_port()}@%h",
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


@pytest.fixture(scope="session")
def _redis_clean():
    """Empty the test Redis database once per session, so no queued task leaks in."""
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory, _redis_clean):
    """A real Celery worker (prefork, two processes) on the test database and Redis."""
    worker = WorkerProcess(tmp_path_factory.mktemp("celery") / "worker.log")
    with django_db_blocker.unblock():
        worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def worker(celery_worker, transactional_db):
    """The session's worker, alive, with no task left queued by an earlier test (those name
    rows that test's flush removed; behind them a scoring run could wait past its deadline)."""
    from baseliner.celery import app

    app.control.purge()
    if celery_worker.proc.poll() is not None:
        celery_worker.start()
    return celery_worker


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, launched by Playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, live_url):
    """A fresh browser context (no cookies) on the live server; fails the test on any
    console error or uncaught page error."""
    context = browser.new_context(base_url=live_url, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.console_errors = errors
    yield page
    context.close()
    assert not errors, f"console errors in the page: {errors}"


@pytest.fixture
def sshd(tmp_path):
    """A real OpenSSH server on loopback with its own host key (provisioning.sshd)."""
    from provisioning.sshd import LoopbackSshd

    server = LoopbackSshd(tmp_path / "sshd")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def local(settings, tmp_path, db):
    """The ``local`` provider on a loopback sshd of this test's own, with no prepare hooks;
    every lease it made is torn down afterwards."""
    from provisioning import base
    from provisioning.local import LocalProvider
    from tests.machines_helpers import teardown_all

    settings.MACHINE_PROVIDER = "local"
    settings.LOCAL_SSHD_DIR = tmp_path / "local-sshd"
    settings.ENVIRONMENTS_DIR = tmp_path / "environments"
    settings.BASELINER_PREPARE_HOOKS = []
    settings.ENVIRONMENTS_DIR.mkdir()
    base.get_provider.cache_clear()
    yield LocalProvider()
    teardown_all()
    LocalProvider().sshd().stop()


def login(page, username: str, password: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state("networkidle")
