"""The shared SSH layer against a real OpenSSH server on loopback."""
import contextlib
import getpass
import os
import time

import psutil
import pytest

from provisioning import ssh
from provisioning.sshd import LoopbackSshd

# `sshd` comes from tests/conftest.py

pytestmark = pytest.mark.slow


@pytest.fixture
def login(sshd):
    pem, pub = ssh.generate_key()
    user = getpass.getuser()
    sshd.authorize(user, pub)
    return dict(address="127.0.0.1", port=sshd.port, username=user, private_key=pem, host_key=sshd.host_key)


def test_run_a_command_over_real_ssh(login):
    client = ssh.connect(**login)
    result = ssh.run(client, "echo hello; echo oops >&2; exit 3")
    assert (result.exit_status, result.stdout, result.stderr) == (3, "hello\n", "oops\n")
    client.close()


def test_a_changed_host_key_is_refused_with_a_clear_error(login, tmp_path):
    other = LoopbackSshd(tmp_path / "other")
    other.start()
    try:
        login["host_key"] = other.host_key
        with pytest.raises(ssh.HostKeyMismatch, match="host key of 127.0.0.1:.* changed: expected SHA256:"):
            ssh.connect(**login)
    finally:
        other.stop()


def test_no_pinned_key_means_no_connection(login):
    login["host_key"] = ""
    with pytest.raises(ssh.SSHError, match="no pinned host key"):
        ssh.connect(**login)


def test_a_dead_host_is_unreachable(login, sshd):
    sshd.stop()
    with pytest.raises(ssh.Unreachable):
        ssh.connect(**login)


def test_output_is_capped_and_a_hang_times_out(login):
    client = ssh.connect(**login)
    big = ssh.run(client, "head -c 5000000 /dev/zero", max_output=1000)
    assert len(big.stdout) == 1000 and big.truncated is True and big.exit_status == 0
    slow = ssh.run(client, "sleep 30", timeout=0.5)
    assert slow.timed_out is True and slow.exit_status is None
    client.close()


def test_stopping_sshd_ends_its_sessions(login, sshd):
    client = ssh.connect(**login)
    assert ssh.run(client, "true").ok
    sshd.stop()
    with pytest.raises(ssh.Unreachable):
        ssh.run(client, "true", timeout=3)
    assert not sshd.is_running()


def _session_port(client) -> int:
    """This client's end of its connection, once the session is up (sshd's
    pre-authentication child is gone by then)."""
    assert ssh.run(client, "true").ok
    return client.get_transport().sock.getsockname()[1]


def _holders(sshd, local_port: int) -> list[psutil.Process]:
    """The sshd processes holding the connection from ``local_port`` (the privileged monitor
    and the session process both hold its socket)."""
    pids = {c.pid for c in psutil.net_connections("tcp")
            if c.pid and c.laddr and c.laddr.port == sshd.port and c.raddr and c.raddr.port == local_port}
    procs = []
    for pid in pids:  # sshd's pre-authentication child may exit between the listing and here
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    return procs


def _kill(procs):
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def _kill_connection(client, sshd) -> None:
    """Kill every sshd process holding this connection, until none does: the machine's end of
    it is then gone for good (a holder missed by one listing would keep it open)."""
    local_port = _session_port(client)
    procs = _holders(sshd, local_port)
    assert procs
    deadline = time.monotonic() + 10
    while procs:
        _kill(procs)
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
                p.wait(2)
        assert time.monotonic() < deadline, "sshd's end of the connection would not die"
        procs = _holders(sshd, local_port)


def test_a_machine_whose_session_dies_or_hangs_gives_a_clear_error(login, sshd):
    # Killed under an open connection (what the clock guard does to the expert's sshd at the
    # deadline): Unreachable, never paramiko's bare EOFError.
    for _ in range(5):
        client = ssh.connect(**login)
        _kill_connection(client, sshd)
        with pytest.raises(ssh.Unreachable):
            ssh.run(client, "true", timeout=3)
        client.close()
    # Frozen: the call is bounded by its timeout and says why.
    client = ssh.connect(**login)
    procs = _holders(sshd, _session_port(client))
    assert procs
    for p in procs:
        p.suspend()
    try:
        started = time.monotonic()
        with pytest.raises(ssh.SSHError, match="did not start the command|connection was lost"):
            ssh.run(client, "true", timeout=2)
        assert time.monotonic() - started < 5
    finally:
        _kill(procs)
        client.close()


def test_fingerprint_matches_ssh_keygen(sshd):
    import subprocess

    out = subprocess.run(["ssh-keygen", "-lf", str(sshd.host_key_path.with_suffix(".pub"))], capture_output=True, text=True).stdout
    assert ssh.fingerprint(sshd.host_key) in out


@pytest.mark.skipif(os.geteuid() != 0, reason="root mode only")
def test_root_may_log_in_with_a_key(sshd):
    pem, pub = ssh.generate_key()
    sshd.authorize("root", pub)
    client = ssh.connect(address="127.0.0.1", port=sshd.port, username="root", private_key=pem, host_key=sshd.host_key)
    assert ssh.run(client, "id -u").stdout.strip() == "0"



def test_connections_send_and_acknowledge_without_delay(login):
    # With Nagle on, or with the server's small unanswered messages left to the delayed-ACK
    # timer, a login plus one command waits ~100 ms on timers (bench/RESULTS.md, "Nagle").
    import socket

    client = ssh.connect(**login)
    try:
        assert client.get_transport().sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert ssh.run(client, "echo ok").stdout == "ok\n"
    finally:
        client.close()
    with socket.create_server(("127.0.0.1", 0)) as server:
        sock = ssh._open_socket("127.0.0.1", server.getsockname()[1], 5)
        peer, _ = server.accept()
        with sock, peer:
            for _ in range(20):  # every read re-arms the immediate ACK (Linux clears it itself)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)
                peer.sendall(b"hostkeys-00")
                assert sock.recv(100) == b"hostkeys-00"
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) != 0
        # A terminal's connection stops asking (sshd has Nagle off for a pty itself; the extra
        # ACKs doubled the echo p99 with 200 experts). Linux itself acknowledges every second
        # small segment at once and leaves delayed-ACK mode then, so about half the reads find
        # it on (20 of 20 while reads re-arm it, above).
        sock = ssh._open_socket("127.0.0.1", server.getsockname()[1], 5)
        peer, _ = server.accept()
        with sock, peer:
            sock.stop_quick_acks()
            still_delayed = 0
            for _ in range(20):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)
                peer.sendall(b"x")
                assert sock.recv(100) == b"x"
                still_delayed += sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 0
            assert still_delayed >= 8


def test_a_terminal_connection_stops_quick_acks(login):
    # What the terminal bridge calls once its shell is open must reach paramiko's socket.
    client = ssh.connect(**login)
    try:
        assert client.get_transport().sock.quick_acks
        chan = client.get_transport().open_session(timeout=5)
        chan.get_pty()
        chan.exec_command("echo ok")
        ssh.interactive(client)
        assert not client.get_transport().sock.quick_acks
        assert chan.recv(100).strip() == b"ok"
    finally:
        client.close()
