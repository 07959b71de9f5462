"""
Shared fixtures. Real components only: the machine's PostgreSQL and Redis, a real ASGI
server (uvicorn) and Celery worker as subprocesses on the test database, and Debian's
Chromium driven by Playwright.

Tests that talk to the server or worker subprocesses must use ``transactional_db``
(the subprocess cannot see data inside a test's open transaction).
"""
import os
from pathlib import Path

import pytest
from django.db import connection

from baseliner.devtools import processes
from baseliner.devtools.processes import ROOT, free_port, wait_for_port  # noqa: F401  (re-exported)
from tests import factories  # noqa: F401  (re-exported for convenience)

CHROMIUM = os.environ.get("BASELINER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def subprocess_env(**extra) -> dict:
    """Environment for a server/worker subprocess that shares this session's test database."""
    return processes.database_env(connection.settings_dict, **extra)


class ServerProcess(processes.ServerProcess):
    """The ASGI server subprocess (baseliner/devtools/processes.py) that tests may kill and
    restart (fault tests). ``env`` is a callable giving its environment (default: this
    session's test database and Redis)."""

    def __init__(self, port: int, log_path: Path, env=None, args: tuple[str, ...] = ()):
        super().__init__(port, log_path, env=env or subprocess_env, extra_args=args)


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


class WorkerProcess(processes.WorkerProcess):
    """A Celery worker subprocess (prefork) that tests may kill (a crash) and restart; by
    default on this session's test database and Redis."""

    def __init__(self, log_path: Path, beat: bool = False, env=None, concurrency: int = 2, name: str = "test"):
        super().__init__(log_path, beat=beat, env=env or subprocess_env, concurrency=concurrency, name=name)


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
    """The session's worker, alive and idle, with no task left queued or running from an
    earlier test (those name rows that test's flush removed; behind them a scoring run or a
    machine's provisioning could wait past its test's deadline: in CI a freed-GPU test once
    waited 60 s behind one). A worker still busy after a short grace is restarted."""
    import time

    from baseliner.celery import app

    app.control.purge()
    if celery_worker.proc.poll() is not None:
        celery_worker.start()
    deadline = time.monotonic() + 3
    while (busy := celery_worker.running_tasks(app)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if busy:
        celery_worker.kill()
        app.control.purge()
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
    failed: list[str] = []  # which requests the "Failed to load resource" errors were
    page.on("response", lambda r: failed.append(f"{r.status} {r.request.method} {r.url}") if r.status >= 400 else None)
    page.console_errors = errors
    yield page
    context.close()
    assert not errors, f"console errors in the page: {errors}; failed requests: {failed}"


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
