"""
A running attempt with a real machine for workspace tests: a fresh Unix user (random name)
reached over the loopback sshd as a ready Lease, with the shell integration installed by the
same preparation hook the machines app runs. Everything is removed afterwards.

Import the fixtures into a test module: ``from tests.workspace_support import *  # noqa``.
"""
import json
import os
import pwd
import secrets
import shutil
import subprocess
import time

import pytest
from django.test import Client

from baseliner.attempts.services import attempt_clock_start, attempt_transition
from baseliner.attempts.states import State
from baseliner.machines.models import Lease
from baseliner.recording.machine import install_shell_integration
from provisioning import ssh
from tests import factories

__all__ = ["machine_attempt", "machine_sshd", "MachineAttempt", "session_cookie", "ws_connect"]


class MachineAttempt:
    def __init__(self, attempt, expert, lease, unix_user, home, admin_client):
        self.attempt, self.expert, self.lease = attempt, expert, lease
        self.unix_user, self.home, self.admin = unix_user, home, admin_client

    def run(self, command: str, **kw) -> ssh.RunResult:
        """Run as root on the machine."""
        return ssh.run(self.admin, command, **kw)

    def run_as_expert(self, command: str, **kw) -> ssh.RunResult:
        from shlex import quote

        return ssh.run(self.admin, f"su -s /bin/bash {quote(self.unix_user)} -c {quote('cd && ' + command)}", **kw)


def _kill_user_processes(name: str) -> None:
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return
    for _ in range(20):
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and _uid_of(p) == uid]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        time.sleep(0.1)


def _uid_of(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def make_machine_attempt(sshd, *, expert=None) -> MachineAttempt:
    if os.geteuid() != 0:
        pytest.skip("creating the expert's Unix user needs root")
    name = "blt" + secrets.token_hex(5)
    home = f"/home/{name}"
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", "-p", "*", name], check=True)
    machine_dir = f"/tmp/bl-machine-{name}"
    expert_pem, expert_pub = ssh.generate_key()
    admin_pem, admin_pub = ssh.generate_key()
    sshd.authorize(name, expert_pub)
    sshd.authorize("root", admin_pub)
    attempt = factories.attempt(expert=expert)
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    attempt = attempt_clock_start(attempt=attempt)
    lease = Lease(attempt=attempt, provider="local",  # reached like a local-provider machine
                  state=Lease.State.READY, address="127.0.0.1", port=sshd.port,
                  username=name, host_key=sshd.host_key, nonce=secrets.token_urlsafe(24),
                  provider_state={"home": home, "machine_dir": machine_dir})
    lease.set_credentials(json.dumps({"expert_key": expert_pem, "admin_key": admin_pem, "admin_user": "root"}))
    lease.save()
    admin = ssh.connect(address="127.0.0.1", port=sshd.port, username="root", private_key=admin_pem, host_key=sshd.host_key)
    install_shell_integration(lease=lease, client=admin, environment=attempt.environment)
    return MachineAttempt(attempt, attempt.expert, lease, name, home, admin)


def destroy_machine_attempt(m: MachineAttempt) -> None:
    m.admin.close()
    _kill_user_processes(m.unix_user)
    subprocess.run(["userdel", "-r", "-f", m.unix_user], capture_output=True)
    shutil.rmtree(f"/tmp/bl-machine-{m.unix_user}", ignore_errors=True)


@pytest.fixture
def machine_sshd():
    """A loopback sshd whose state folder the expert's user can traverse (sshd reads the
    authorized keys as that user; pytest's tmp_path is private to root)."""
    from provisioning.sshd import LoopbackSshd

    folder = f"/tmp/bl-sshd-{secrets.token_hex(6)}"
    server = LoopbackSshd(folder)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def machine_attempt(machine_sshd, transactional_db):
    m = make_machine_attempt(machine_sshd)
    yield m
    destroy_machine_attempt(m)


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def ws_connect(live_url: str, path: str, *, user=None, cookie: str | None = None, origin: str | None = None, **kw):
    """A synchronous WebSocket client (the ``websockets`` library) logged in as ``user``."""
    from websockets.sync.client import connect

    headers = {"Origin": origin or live_url}
    if user is not None or cookie:
        headers["Cookie"] = f"sessionid={cookie or session_cookie(user)}"
    # legacy=True: the connection is returned open, for the caller to close (websockets 17 warns
    # when that is left implicit, and its default may become a context manager only)
    return connect(live_url.replace("http://", "ws://") + path, additional_headers=headers, max_size=None,
                   legacy=True, **kw)
