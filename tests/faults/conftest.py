"""
Fault-injection infrastructure: a *private* PostgreSQL cluster and a *private* Redis that
these tests may kill and restart, and the app's server and worker as subprocesses on them.

The machine's shared PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are never
touched: other test runs (other developers, CI) use them at the same time.

The subprocesses run with the *production* settings module (``baseliner.settings``, DEBUG
off, persistent database connections with health checks), so what a fault test sees is what
a real deployment does: the real error pages, the real reconnect behaviour. Test data is
written and read back through ``ops`` (small functions run by ``django_call`` in a Django
subprocess on the private database), because the pytest process itself is bound to the
shared test database.
"""
import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, ServerProcess, WorkerProcess, free_port, wait_for_port

PG_BIN = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))[-1]) \
    if glob.glob("/usr/lib/postgresql/*/bin") else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free loopback port, in a temp dir."""

    def __init__(self, root: Path):
        self.root = root
        self.data = root / "data"
        self.sockets = root / "run"
        self.log = root / "postgres.log"
        self.port = free_port()

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for p in (self.root, self.sockets):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                                     "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"]),
                       check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                                     "-t", "60", "-o", opts, "start"]), check=True, capture_output=True, timeout=90)

    def crash(self) -> None:
        """Stop the way a crash does: every backend killed at once, no checkpoint. PostgreSQL
        replays its WAL on the next start, as after a real crash."""
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, timeout=60)

    def psql(self, sql: str, db: str = "postgres") -> str:
        r = subprocess.run(_as_postgres([str(PG_BIN.parent / "bin" / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                                         "-U", "postgres", "-d", db, "-At", "-c", sql]),
                           capture_output=True, text=True, timeout=60)
        if r.returncode:
            raise RuntimeError(r.stderr)
        return r.stdout.strip()

    def url(self, db: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def destroy(self) -> None:
        self.crash()
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A throw-away redis-server on a free loopback port, without persistence (as the
    embedded default runs it): a restart loses whatever only Redis held."""

    def __init__(self, root: Path):
        self.root, self.port, self.proc = root, free_port(), None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.root), "--logfile", str(self.root / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc, timeout=20)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()


class Stack:
    """The private services plus the environment every app subprocess of a test gets."""

    def __init__(self, pg: PrivatePostgres, redis: PrivateRedis, db: str, root: Path):
        self.pg, self.redis, self.db, self.root = pg, redis, db, root

    def env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST", "BASELINER_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="baseliner.settings",
            DEBUG="0",
            DATABASE_URL=self.pg.url(self.db),
            REDIS_URL=self.redis.url,
            BASELINER_VAR_DIR=str(self.root / "var"),
            ALLOWED_HOSTS="127.0.0.1,localhost",
            DB_CONN_MAX_AGE="60",
            PYTHONUNBUFFERED="1",
            LOG_LEVEL="WARNING",
        )
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def call(self, op: str, _env: dict | None = None, **kwargs):
        """Run ``tests.faults.ops.<op>(**kwargs)`` in a Django subprocess on the private
        database (with extra environment variables ``_env``); returns its JSON result."""
        code = ("import django, json, sys; django.setup(); from tests.faults import ops; "
                f"print('\\n@@' + json.dumps(ops.{op}(**json.loads(sys.argv[1]))))")
        r = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], cwd=ROOT, env=self.env(**(_env or {})),
                           capture_output=True, text=True, timeout=120)
        if r.returncode:
            raise RuntimeError(f"ops.{op} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return json.loads(r.stdout.rsplit("\n@@", 1)[1])


@pytest.fixture(scope="session")
def private_postgres():
    """One private cluster per test session, migrated once into a template database; each
    test gets a fresh copy of it (CREATE DATABASE ... TEMPLATE is fast)."""
    if PG_BIN is None:
        pytest.fail("PostgreSQL server binaries are missing (/usr/lib/postgresql/*/bin): install postgresql")
    root = Path(tempfile.mkdtemp(prefix="bl-faults-pg-"))
    os.chmod(root, 0o755)
    pg = PrivatePostgres(root / "pg")
    pg.init()
    pg.start()
    redis = PrivateRedis(root / "redis-template")
    redis.start()
    try:
        pg.psql("CREATE DATABASE bl_template")
        stack = Stack(pg, redis, "bl_template", root)
        r = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=stack.env(),
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        yield pg
    finally:
        redis.kill()
        pg.destroy()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def stack(private_postgres, tmp_path):
    """A fresh database (copied from the migrated template) and a fresh private Redis."""
    db = f"bl_{os.urandom(4).hex()}"
    private_postgres.psql(f"CREATE DATABASE {db} TEMPLATE bl_template")
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    s = Stack(private_postgres, redis, db, tmp_path)
    yield s
    redis.kill()
    try:
        private_postgres.start()  # a test may leave it stopped
    except subprocess.CalledProcessError:
        pass  # already running
    private_postgres.psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


@pytest.fixture
def app_server(stack, tmp_path):
    server = ServerProcess(free_port(), tmp_path / "server.log", env=stack.env)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def app_worker(stack, tmp_path):
    worker = WorkerProcess(tmp_path / "worker.log", env=lambda: stack.env(LOG_LEVEL="INFO"), concurrency=1, name="fault")
    worker.start()
    yield worker
    worker.stop()
