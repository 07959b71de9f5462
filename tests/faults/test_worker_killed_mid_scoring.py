"""
The Celery worker is SIGKILLed (with its pool) in the middle of a scoring run: the run is
recorded as an error entry (never silently dropped, never duplicated, the score log's hash
chain intact), the runs queued behind it are processed, and the attempt continues.
"""
import socket
import threading
import time

import pytest

from .test_service_restarts import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.faults]


class SilentMachine:
    """A TCP listener that accepts and never answers: the scorer's SSH connection hangs
    (banner timeout) as on a machine under heavy load, which keeps the run in progress."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def test_a_worker_killed_mid_scoring_leaves_an_error_entry_and_the_attempt_goes_on(stack, app_worker, app_server):
    machine = SilentMachine()
    try:
        seed = stack.call("seed_scoring_attempt", machine_port=machine.port, scoring_timeout=5)
        run1 = str(seed["run"])
        # (psql, not a Django subprocess: the run hangs ~10 s, a Django start can take that long)
        wait_until(lambda: stack.pg.psql(f"SELECT status FROM scoring_scorerun WHERE id = {run1}", db=stack.db) == "running",
                   timeout=60, interval=0.2, what="the worker starting the scoring run")
        time.sleep(1)
        app_worker.kill()
    finally:
        machine.close()  # from now on the machine refuses connections: later runs finish fast

    state = stack.call("scoring_state", attempt_id=seed["attempt"])
    assert state["runs"][run1] == ["running", None] and state["entries"] == []  # lost with its worker
    app_worker.start()
    run2 = str(stack.call("press_score", attempt_id=seed["attempt"]))  # the expert presses Score again

    # The sweep (beat, every minute) once the run is past its scorer's timeout (5 s) + grace
    # (SCORING_STALE_GRACE_SECONDS, 0 here instead of 5 minutes).
    time.sleep(6)
    grace = {"SCORING_STALE_GRACE_SECONDS": "0"}
    swept = stack.call("sweep_scoring_runs", _env=grace)
    assert swept["interrupted"] == [int(run1)]
    state = wait_until(lambda: (s := stack.call("scoring_state", attempt_id=seed["attempt"]))["runs"][run2][0] == "done" and s,
                       timeout=90, interval=1, what="the run queued behind the interrupted one")
    entries = state["entries"]
    assert [e[1] for e in entries] == [1, 2], "one entry per run, in order, none duplicated"
    first = entries[0]
    assert first[2] == "error" and "interrupted" in first[3] and first[4] == {"interrupted": True}
    assert state["runs"][run1] == ["done", first[0]] and state["runs"][run2][1] == entries[1][0]
    assert state["chain_problems"] == [] and state["attempt_state"] == "running"
    # Sweeping again changes nothing.
    assert stack.call("sweep_scoring_runs", _env=grace) == {"interrupted": [], "requeued": []}
    assert len(stack.call("scoring_state", attempt_id=seed["attempt"])["entries"]) == 2


def test_a_score_press_during_a_redis_outage_is_kept_and_runs_when_redis_is_back(stack, app_server):
    """The run is written to the database before its Celery message: a press while Redis is down
    answers quickly, and the sweep hands the run to a worker once Redis is back."""
    import requests

    seed = stack.call("seed_scoring_attempt", machine_port=1, scoring_timeout=5)  # first press, queued
    s = requests.Session()
    s.cookies.set("sessionid", seed["session"], domain="127.0.0.1", path="/")
    s.get(f"{app_server.url}/attempts/{seed['attempt']}/")
    stack.redis.kill()
    started = time.monotonic()
    r = s.post(f"{app_server.url}/attempts/{seed['attempt']}/score/",
               headers={"X-CSRFToken": s.cookies["csrftoken"], "Referer": app_server.url + "/"})
    took = time.monotonic() - started
    assert took < 30, f"the press hung {took:.0f}s while Redis was down"
    assert r.status_code == 202, r.status_code  # accepted: it is in the database
    runs = stack.call("scoring_state", attempt_id=seed["attempt"])["runs"]
    assert len(runs) == 2 and all(status == "queued" for status, _ in runs.values()), runs
    stack.redis.start()
    swept = stack.call("sweep_scoring_runs")
    assert swept["requeued"] == [int(min(runs, key=int))], "the first waiting run goes to a worker again"
