"""
baseliner as a benchmark contender: a scratch database, N experts each with a running attempt
whose lease points at one of the bench's Unix users on the bench's loopback sshd, a logged-in
session cookie per expert, and the real ASGI server (uvicorn, one process, DEBUG off) as a
subprocess.

The leases are written directly (the bench's users already exist; provisioning N machines
through the worker is not what is measured), but everything the terminal does at connect time
is the product's own code: session auth, Origin check, ``attempt_for_user``, the lease's
pinned host key, the shell integration (installed by the product's prepare hook when it is
there), tmux, recording.

The scratch database is ``<your DATABASE_URL's name>_bench`` (created and migrated here,
dropped afterwards); recordings go to a scratch folder that is removed afterwards.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _harness import ROOT, BaselinerSession, BenchHost, free_port

from baseliner.devtools.processes import ServerProcess

_SETUP_DONE = False


def scratch_env(var_dir: Path, record: bool = True) -> dict:
    """Environment for the bench's Django (this process and the server subprocess)."""
    import environ

    environ.Env.read_env(ROOT / ".env", overwrite=False)
    # The first call's DATABASE_URL names the scratch database (setup() then points this
    # process at the scratch one, so a second app must not derive its name from that).
    os.environ.setdefault("BENCH_BASE_DATABASE_URL", os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/baseliner"))
    base = os.environ["BENCH_BASE_DATABASE_URL"]
    head, _, name = base.rpartition("/")
    env = {
        "DJANGO_SETTINGS_MODULE": "baseliner.settings",
        "DATABASE_URL": f"{head}/{name.split('?')[0]}_bench",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "BASELINER_VAR_DIR": str(var_dir),
        "RECORDINGS_DIR": str(var_dir / "recordings"),
        "DEBUG": "0",
        "BASELINER_RECORD_TERMINALS": "1" if record else "0",
        "PYTHONUNBUFFERED": "1",
    }
    return env


def _create_database(url: str) -> None:
    import psycopg

    head, _, name = url.rpartition("/")
    with psycopg.connect(f"{head}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _drop_database(url: str) -> None:
    import psycopg

    head, _, name = url.rpartition("/")
    with contextlib.suppress(Exception), psycopg.connect(f"{head}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class BaselinerApp:
    """The scratch database, the experts and their attempts, and the uvicorn subprocess."""

    def __init__(self, host: BenchHost, *, n: int, record: bool = True, workers: int = 1):
        self.host, self.n, self.record, self.workers = host, n, record, workers
        self.var = Path(tempfile.mkdtemp(prefix="bench-bl-var-"))
        self.env = scratch_env(self.var, record)
        self.port = free_port()
        # One uvicorn process (or --workers), in its own session, its log beside the recordings.
        self.server = ServerProcess(
            self.port, self.var / "uvicorn.log", env=self.server_env, app="_asgi:application", app_dir=ROOT / "bench",
            extra_args=["--no-access-log", *(["--workers", str(self.workers)] if self.workers > 1 else []),
                        *os.environ.get("BENCH_UVICORN_ARGS", "").split()],  # e.g. "--ws wsproto", to compare
            new_session=True, start_timeout=60, poll_interval=0.05, stop_timeout=15)
        if os.environ.get("BENCH_PLAIN_UVICORN") == "1":  # A/B: uvicorn's own supervisor, one socket for all workers
            self.server.args[self.server.args.index("baseliner.serve")] = "uvicorn"
        self.experts: list[dict] = []  # {"attempt_id", "sessionid", "terminal", "user"}

    # --- data ---
    def setup(self) -> None:
        """Scratch database, migrations, experts (runs in a thread: Django ORM is sync)."""
        global _SETUP_DONE
        os.environ.update(self.env)
        # The bench's own ORM calls are few, short and made between measurements.
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        _create_database(self.env["DATABASE_URL"])
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env={**os.environ, **self.env}, check=True)
        if not _SETUP_DONE:
            import django

            django.setup()
            _SETUP_DONE = True
        # root may log in with the bench key: the prepare hook installs the shell integration
        self.host.sshd.authorize("root", self.host.pub)
        self._make_experts(self.n)

    def _make_experts(self, n: int) -> None:
        from django.conf import settings
        from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
        from django.contrib.sessions.backends.db import SessionStore

        from baseliner.attempts import services
        from baseliner.attempts.states import State
        from baseliner.catalog.models import Environment
        from baseliner.machines.models import Lease

        User = get_user_model()
        env = Environment.objects.create(
            slug=f"bench{secrets.token_hex(3)}", version=1, content_hash="bench", title="Benchmark", instructions="bench",
            time_limit_seconds=8 * 3600, direction="higher", aggregation="best", y_start=0.0, y_ref=1.0)
        self.host.add_users(n)
        # The bench starts the clocks itself; the machine guard that clock start installs on
        # each lease (a root `sh` loop per machine, attempts/machine_guard.py) is not part of
        # the terminal path and would add N processes polling once a second: left out here.
        from baseliner.attempts import lifecycle

        for name in ("attempt_machine_sync_safely", "_machine_sync_soon"):
            if hasattr(lifecycle, name):
                setattr(lifecycle, name, lambda *args, **kwargs: None)
        made = []
        for i in range(len(self.experts), n):
            unix = self.host.users[i]
            user = User.objects.create_user(username=f"bench-{unix.name}", password=None)
            assignment = services.assignment_create(expert=user, environment=env)
            attempt = assignment.attempts.get()
            services.attempt_accept_rules(attempt=attempt)
            attempt = services.attempt_transition(attempt=attempt, to=State.PROVISIONING)
            Path(self.host.dir, f"m{i}").mkdir(mode=0o755, exist_ok=True)
            lease = Lease(attempt=attempt, provider="local", state=Lease.State.READY, address="127.0.0.1",
                          port=self.host.sshd.port, username=unix.name, host_key=self.host.sshd.host_key,
                          nonce=secrets.token_hex(16),
                          provider_state={"home": unix.home, "machine_dir": f"{self.host.dir}/m{i}",
                                          "protected_dir": f"{self.host.dir}/m{i}/protected", "token": "",
                                          "protected_group": "root", "scorer_user": "root"})
            lease.set_credentials(json.dumps({"expert_key": self.host.key, "admin_key": self.host.key, "admin_user": "root"}))
            lease.save()
            made.append((i, user, attempt, lease))
        from concurrent.futures import ThreadPoolExecutor

        from django.db import connection

        def prepare(lease):
            try:
                self._prepare(lease)
            finally:
                connection.close()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(prepare, [m[3] for m in made]))
        for i, user, attempt, lease in made:
            services.attempt_clock_start(attempt=attempt)
            session = SessionStore()
            session[SESSION_KEY] = str(user.pk)
            session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[-1]
            session[HASH_SESSION_KEY] = user.get_session_auth_hash()
            session.create()
            self.experts.append({"attempt_id": attempt.pk, "sessionid": session.session_key,
                                 "terminal": f"t{i}", "user": self.host.users[i].name})

    def _prepare(self, lease) -> None:
        """Install the product's shell integration on the lease (its prepare hook for the
        terminal: command-log markers, tmux configuration). The other hooks (scoring) are not
        about terminals and are not run."""
        from django.utils.module_loading import import_string

        from baseliner.machines.services import lease_client

        try:
            hook = import_string("baseliner.recording.machine.install_shell_integration")
        except ImportError:
            return
        client = lease_client(lease=lease, as_admin=True)
        try:
            hook(lease=lease, client=client, environment=None)
        finally:
            client.close()

    # --- server ---
    def start(self) -> None:
        self.server.start()

    def server_env(self) -> dict:
        env = {**os.environ, **self.env}
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        return env

    def kill(self) -> None:
        self.server.kill()

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> None:
        """A deploy's restart: SIGTERM (uvicorn closes the sockets, the bridges flush their
        recordings), then a new server process."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        from django.db import connections

        connections.close_all()
        _drop_database(self.env["DATABASE_URL"])
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {self.var} (uvicorn.log, recordings)")
        else:
            shutil.rmtree(self.var, ignore_errors=True)

    @property
    def proc(self):
        return self.server.proc

    @property
    def pid(self) -> int:
        return self.server.pid

    # --- sessions ---
    def session(self, i: int, *, terminal: str | None = None) -> BaselinerSession:
        e = self.experts[i]
        return BaselinerSession(port=self.port, attempt_id=e["attempt_id"], terminal=terminal or e["terminal"],
                                sessionid=e["sessionid"], server_pid=self.pid)

    # --- recording completeness ---
    def recording_check(self, sessions) -> str:
        """Every byte each expert received must be in its terminal's asciicast(s): compare the
        concatenated ``o`` events with what the client got, per terminal."""
        from baseliner.recording.models import Recording

        checked = bad = 0
        first = None
        for s in sessions:
            if not s.keep_all or not s.all_output:
                continue
            checked += 1
            paths = []
            for rec in Recording.objects.filter(attempt_id=s.attempt_id).order_by("pk"):
                paths.append(Path(self.env["RECORDINGS_DIR"]) / rec.path)
            recorded = "".join(_asciicast_output(p) for p in paths)
            got = bytes(s.all_output).decode("utf-8", "replace")
            if got not in recorded:
                bad += 1
                if first is None:
                    at = _common_len(got, recorded[-len(got):] if len(recorded) >= len(got) else recorded)
                    first = f"attempt {s.attempt_id}: {len(got)} chars received, {len(recorded)} recorded; " \
                            f"received ...{got[max(0, at - 40):at + 40]!r}"
        if not checked:
            return "not checked"
        if bad:
            print("recording incomplete:", first)
        return f"yes ({checked} terminals)" if bad == 0 else f"NO: {bad}/{checked} terminals incomplete"


def _common_len(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _asciicast_output(path: Path) -> str:
    out = []
    with contextlib.suppress(OSError), open(path, encoding="utf-8") as f:
        next(f, None)  # header
        for line in f:
            with contextlib.suppress(ValueError):
                t, kind, data = json.loads(line)
                if kind == "o":
                    out.append(data)
    return "".join(out)


class BaselinerTarget:
    """peers.py's contender: one expert's terminal through the app."""

    label = "baseliner"
    tmux = True
    record = True

    def __init__(self, host: BenchHost):
        self.host = host
        self.app = BaselinerApp(host, n=max(1, len(host.users)), record=self.record)

    def start(self) -> None:
        self.app.setup()
        self.app.start()

    def stop(self) -> None:
        self.app.cleanup()

    async def session(self, i=0, *, name=None):
        s = self.app.session(i, terminal=name)
        await s.open()
        return s

    def bridge_pids(self, sessions):
        return [self.app.pid]


class BaselinerLoad:
    """concurrency.py's contender: N experts, each one terminal."""

    label = "baseliner"

    def __init__(self, host: BenchHost, *, n: int, record: bool = True, workers: int = 1):
        self.host = host
        self.app = BaselinerApp(host, n=n, record=record, workers=workers)
        self.keep_output = record
        if not record:
            self.label = "baseliner (recording off)"
        if workers > 1:
            self.label += f", {workers} uvicorn workers"

    def start(self) -> None:
        self.app.setup()
        self.app.start()

    def stop(self) -> None:
        self.app.cleanup()

    def restart(self) -> None:
        self.app.restart()

    @property
    def pid(self) -> int:
        return self.app.pid

    async def connect(self, i: int):
        s = self.app.session(i)
        await s.open()
        return s

    async def reconnect(self, i: int, old):
        """The page reconnects to the same terminal: tmux reattaches the same shell."""
        s = self.app.session(i)
        if old is not None:
            s.keep_all, s.all_output = old.keep_all, old.all_output
            s.received = 0
        await s.open()
        return s

    def recording_check(self, sessions) -> str:
        return self.app.recording_check(sessions)


def page_open(page, app: BaselinerApp, i: int = 0) -> None:
    """The expert's workspace page, logged in by session cookie, with the bench's write hook
    on the page's xterm.js (the page exposes its terminals as window.baseliner.terminals)."""
    e = app.experts[i]
    page.context.add_cookies([{"name": "sessionid", "value": e["sessionid"], "url": f"http://127.0.0.1:{app.port}/"}])
    page.goto(f"http://127.0.0.1:{app.port}/attempts/{e['attempt_id']}/")
    page.wait_for_function("() => window.baseliner && window.baseliner.terminals && window.baseliner.terminals.active"
                           " && window.baseliner.terminals.active.term", timeout=30_000)
    page.evaluate("() => window.__benchWrap(Object.getPrototypeOf(window.baseliner.terminals.active.term))")
    page.click(".xterm")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.__bench.tail.includes('bench$ ')", timeout=30_000)
