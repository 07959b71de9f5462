"""README command 1 (`scripts/run.sh`), as a new user runs it: the embedded defaults (SQLite in
its own folder, the private Redis the script starts, a Celery worker with beat, uvicorn), the
demo logins, the demo attempt started on a real local machine with a terminal that answers,
the attempt ended and its machine removed, and Ctrl-C stopping every process it started.

Nothing of the test suite's own services is handed to it: no DATABASE_URL, no REDIS_URL, no
test settings."""
import os
import pwd
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
from websockets.sync.client import connect

from baseliner.devtools.processes import ROOT, free_port

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="the local provider's machines need root")]

SUITE_ONLY = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "BASELINER_VAR_DIR", "PORT")


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"scripts/run.sh exited ({proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        try:
            last = predicate()
            if last:
                return last
        except (requests.ConnectionError, OSError) as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what} not within {timeout}s (last: {last!r}):\n{log.read_text()[-3000:]}")


def _login(base: str, username: str, password: str) -> requests.Session:
    s = requests.Session()
    s.get(f"{base}/login/")
    r = s.post(f"{base}/login/", data={"username": username, "password": password,
                                       "csrfmiddlewaretoken": s.cookies["csrftoken"]},
               headers={"Referer": f"{base}/login/"})
    assert r.ok and "sessionid" in s.cookies, (r.status_code, r.text[:1000])
    return s


def _post(s: requests.Session, base: str, path: str, **data) -> requests.Response:
    return s.post(f"{base}{path}", data={"csrfmiddlewaretoken": s.cookies["csrftoken"], **data},
                  headers={"Referer": f"{base}/"})


def _lease_users() -> set[str]:
    return {p.pw_name for p in pwd.getpwall() if re.fullmatch(r"bl[0-9a-f]{6,}", p.pw_name)}


def test_the_run_command_serves_the_demo_end_to_end_and_ctrl_c_stops_it_all(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in SUITE_ONLY}
    env.update(BASELINER_VAR_DIR=str(tmp_path / "var"), PORT=str(port))
    log = tmp_path / "run.log"
    users_before = _lease_users()
    with log.open("wb") as out:
        proc = subprocess.Popen(["bash", "scripts/run.sh"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own process group, as in a terminal
    group = os.getpgid(proc.pid)
    try:
        _wait(lambda: requests.get(f"{base}/login/", timeout=5).ok, 240, "the login page", proc, log)
        text = log.read_text()
        assert "admin / admin-demo-pass" in text and "expert / expert-demo-pass" in text
        assert (tmp_path / "var" / "baseliner.sqlite3").exists(), "the embedded default is SQLite in its var folder"

        expert = _login(base, "expert", "expert-demo-pass")
        home = expert.get(f"{base}/").text
        assert "Demo" in home, home[:2000]
        attempt_id = int(re.search(r'href="/attempts/(\d+)/"', home).group(1))
        r = _post(expert, base, f"/attempts/{attempt_id}/start/", accept_rules="on")
        assert r.ok, r.status_code

        # The worker (on the private Redis) provisions a real local machine.
        status = _wait(lambda: (st := expert.get(f"{base}/attempts/{attempt_id}/machine/", timeout=5).json())["ready"]
                       and st, 120, "a ready machine", proc, log)
        assert status["state"] == "running"
        new_users = _lease_users() - users_before
        assert len(new_users) == 1, new_users

        # Its terminal answers through the WebSocket (the channel layer is the private Redis too).
        headers = {"Cookie": f"sessionid={expert.cookies['sessionid']}", "Origin": base}
        url = f"ws://127.0.0.1:{port}/ws/attempts/{attempt_id}/terminals/main/?cols=80&rows=24"
        with connect(url, additional_headers=headers, open_timeout=30) as ws:
            seen, ready = b"", False
            deadline = time.monotonic() + 30
            while b"run-cmd-42" not in seen and time.monotonic() < deadline:
                msg = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
                if isinstance(msg, str):
                    assert '"error"' not in msg and '"closed"' not in msg, msg
                    if '"ready"' in msg and not ready:
                        ready = True
                        ws.send(b"echo run-cmd-$((6*7))\r")
                else:
                    seen += msg
            assert b"run-cmd-42" in seen, seen[-500:]
            # The machine's own `score` command reaches this server, whatever port it was given.
            ws.send(b"score\r")
            deadline = time.monotonic() + 90
            while not re.search(rb"#1 \w+: normalized|score: ", seen) and time.monotonic() < deadline:
                msg = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
                if isinstance(msg, bytes):
                    seen += msg
            assert re.search(rb"#1 \w+: normalized", seen), seen[-800:]

        # The demo admin sees it in the review pages.
        admin = _login(base, "admin", "admin-demo-pass")
        assert admin.get(f"{base}/admin/").ok
        assert admin.get(f"{base}/review/attempts/{attempt_id}/").ok

        # Ending it (the expert's button) leads to the survey and removes the machine.
        r = _post(expert, base, f"/attempts/{attempt_id}/end/", confirm="yes")
        assert r.ok, r.status_code
        _wait(lambda: not (_lease_users() - users_before), 90, "the machine torn down", proc, log)
        assert expert.get(f"{base}/attempts/{attempt_id}/machine/").json()["state"] in ("ended", "surveyed")
    finally:
        started = [p for p in psutil.process_iter(["pid"]) if _in_group(p, group)]
        os.killpg(group, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            raise
        if _lease_users() - users_before:  # the test failed before the machine was torn down
            _teardown_leases(env)
    assert psutil.wait_procs(started, timeout=30)[1] == [], "Ctrl-C left processes of the run command running"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/login/", timeout=5)


def _in_group(p: psutil.Process, group: int) -> bool:
    try:
        return os.getpgid(p.pid) == group
    except (ProcessLookupError, psutil.Error):
        return False


def _teardown_leases(env: dict) -> None:
    """The suite's own teardown (tests.machines_helpers.teardown_all) of what the run command's
    database still holds."""
    subprocess.run([sys.executable, "manage.py", "shell", "-c",
                    "from tests.machines_helpers import teardown_all; teardown_all()"],
                   cwd=ROOT, env=env, capture_output=True, timeout=120)
