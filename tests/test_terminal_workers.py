"""Several uvicorn worker processes (how production serves many experts: README, "Serving
many experts"): terminals held by different processes all work, and an attempt event reaches
every one of them through the channel layer."""
import subprocess

import pytest

from provisioning.sshd import free_port
from tests.conftest import ServerProcess
from tests.test_terminal import open_term, push_event
from tests.workspace_support import *  # noqa: F401,F403

pytestmark = pytest.mark.slow


def _holders(port: int) -> set[str]:
    """pids of the processes holding established connections on ``port``."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    return {part.split("pid=")[1].split(",")[0] for part in out.split() if "pid=" in part}


@pytest.fixture
def two_worker_server(tmp_path, django_db_blocker):
    server = ServerProcess(free_port(), tmp_path / "server.log", args=("--workers", "2"))
    with django_db_blocker.unblock():
        server.start()
    yield server
    server.stop()


def test_terminals_on_two_worker_processes_all_work_and_all_close_at_the_end(two_worker_server, machine_attempt):
    url = two_worker_server.url
    terms = []
    # The kernel shares connections out by a hash of their addresses: 8 land on one worker about
    # once in 128 runs (seen once in CI), so more are opened until both workers hold some.
    while len(terms) < 8 or (len(_holders(two_worker_server.port)) < 2 and len(terms) < 32):
        t = open_term(url, machine_attempt, name=f"w{len(terms)}")
        t.control_message("ready", timeout=30)
        terms.append(t)
    assert len(_holders(two_worker_server.port)) == 2, f"the {len(terms)} terminals all landed on one process; nothing tested"
    for i, t in enumerate(terms):
        t.send(f"echo worker-$((40+{i}))\r")
        t.read_until(f"worker-{40 + i}", timeout=20)
    push_event(machine_attempt.attempt.pk, "ended", {"message": "Time is up."})
    for t in terms:
        assert t.close_code(timeout=20) == (4000, "Time is up.")
