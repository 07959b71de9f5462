"""
SSH to machines: the one place baseliner opens SSH connections (paramiko).

Host keys are *pinned*: every connection verifies the server's key against the one recorded
when the machine was leased, and a mismatch is refused with HostKeyMismatch. There is no
auto-accept policy anywhere in baseliner (a changed key means another machine, or a
man in the middle, and the expert's work must not go there).

    client = connect(address="127.0.0.1", port=2222, username="root",
                     private_key=pem, host_key="ssh-ed25519 AAAA...")
    result = run(client, "id -u", timeout=10)
    result.exit_status, result.stdout
"""
from __future__ import annotations

import base64
import hashlib
import io
import socket
import time
from dataclasses import dataclass

import paramiko


class SSHError(Exception):
    """A connection or command failed. ``str()`` is fit for staff; user_message for experts."""

    user_message = "The connection to your machine failed. Retrying usually helps; staff have been told."


class HostKeyMismatch(SSHError):
    user_message = "Your machine's identity changed unexpectedly, so baseliner refused to connect. Staff have been told."


class Unreachable(SSHError):
    user_message = "Your machine is not answering. Staff have been told."


def generate_key() -> tuple[str, str]:
    """A new Ed25519 key pair: (private key in OpenSSH PEM format, public key line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return pem.decode(), pub.decode()


def load_private_key(pem: str) -> paramiko.PKey:
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(pem))
        except (paramiko.SSHException, ValueError):
            continue
    raise SSHError("unsupported or malformed private key")


def parse_host_key(line: str) -> paramiko.PKey:
    """'ssh-ed25519 AAAA... [comment]' -> PKey."""
    parts = line.strip().split()
    if len(parts) < 2:
        raise SSHError(f"malformed host key: {line[:40]!r}")
    return paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))


def fingerprint(host_key_line: str) -> str:
    """OpenSSH-style SHA256 fingerprint of a public key line."""
    blob = base64.b64decode(host_key_line.strip().split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _known_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


class _Transport(paramiko.Transport):
    """paramiko's transport thread wakes every 0.1 s while idle to see whether it was closed;
    with hundreds of open terminals in one web process those wakeups (thousands a second)
    compete for the GIL with the event loop that carries every keystroke. Once a second is
    enough: close() closes the socket itself, and keepalives run every 15 s."""

    _active_check_timeout = 1.0


class _Socket(socket.socket):
    """The TCP socket under every connection to a machine, tuned for a conversation of small
    messages (bench/RESULTS.md, "Nagle and delayed ACKs"):

    - Nagle's algorithm off (``TCP_NODELAY``), as OpenSSH's client has it for a terminal:
      paramiko leaves it on, and then wherever it sends twice before it reads (several steps
      of every login; a keystroke right behind a window adjust) the second packet waits for
      the server's delayed ACK, 40 ms on Linux;
    - what arrives acknowledged at once (``TCP_QUICKACK``, re-armed before every read: Linux
      drops it by itself): after a login sshd sends small messages that need no answer
      (``hostkeys-00``, its debug lines), and until the server sets Nagle off itself, which
      it does only for a terminal, its next reply (the session channel's confirmation, a
      command's exit status) waits for our ACK.

    Together they take a login plus one command from 118 ms to 31 ms here (bench/ssh_connect.py). A terminal
    stops the quick ACKs once its shell is open (``interactive``): sshd then has Nagle off
    itself, and an extra system call and ACK on every read of a busy terminal doubled the echo
    p99 with 200 experts."""

    _quickack = getattr(socket, "TCP_QUICKACK", None)  # Linux only

    def recv(self, bufsize, flags=0):
        if self._quickack is not None:
            try:
                self.setsockopt(socket.IPPROTO_TCP, self._quickack, 1)
            except OSError:  # a closed socket: the recv below says so
                pass
        return super().recv(bufsize, flags)

    def stop_quick_acks(self) -> None:
        self._quickack = None

    @property
    def quick_acks(self) -> bool:
        """Whether reads still ask for immediate ACKs."""
        return self._quickack is not None


def interactive(client: paramiko.SSHClient) -> None:
    """The connection now carries a terminal (a pty session): sshd sets Nagle off for it, so
    our reads stop asking for quick ACKs (see ``_Socket``)."""
    transport = client.get_transport()
    sock = getattr(transport, "sock", None)
    if isinstance(sock, _Socket):
        sock.stop_quick_acks()


def _open_socket(address: str, port: int, timeout: float) -> socket.socket:
    error: OSError | None = None
    for family, type_, proto, _, addr in socket.getaddrinfo(address, port, type=socket.SOCK_STREAM):
        sock = _Socket(family, type_, proto)
        try:
            sock.settimeout(timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect(addr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"no address for {address}")


def _connect_error(exc: BaseException, *, address: str, port: int, username: str, host_key: str) -> BaseException:
    """What a failed login raises: ours, with a reason fit for staff (anything else unchanged)."""
    if isinstance(exc, paramiko.BadHostKeyException):
        return HostKeyMismatch(
            f"host key of {address}:{port} changed: expected {fingerprint(host_key)}, got "
            f"{fingerprint(exc.key.get_name() + ' ' + exc.key.get_base64())}"
        )
    if isinstance(exc, paramiko.SSHException):
        if "not found in known_hosts" in str(exc) or "Server" in str(exc) and "not found" in str(exc):
            return HostKeyMismatch(f"host key of {address}:{port} does not match the pinned key ({exc})")
        return SSHError(f"SSH to {username}@{address}:{port} failed: {exc}")
    if isinstance(exc, (OSError, EOFError)):  # socket.timeout is an OSError
        return Unreachable(f"cannot reach {address}:{port}: {exc}")
    return exc


def connect(*, address: str, port: int, username: str, private_key: str, host_key: str, timeout: float = 10.0,
            keepalive: int = 15) -> paramiko.SSHClient:
    """A connected client whose server key matched ``host_key``; raises HostKeyMismatch,
    Unreachable or SSHError."""
    if not host_key:
        raise SSHError("no pinned host key for this machine: refusing to connect")
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    pinned = parse_host_key(host_key)
    client.get_host_keys().add(_known_name(address, port), pinned.get_name(), pinned)
    pkey = load_private_key(private_key)
    sock = None
    try:
        sock = _open_socket(address, port, timeout)
        client.connect(
            address, port=port, username=username, pkey=pkey, timeout=timeout, sock=sock,
            banner_timeout=timeout, auth_timeout=timeout, allow_agent=False, look_for_keys=False,
            disabled_algorithms={"keys": []}, transport_factory=_Transport,
        )
    except BaseException as exc:
        client.close()
        if sock is not None:
            sock.close()  # paramiko closes it with its transport, but not when it failed before one
        error = _connect_error(exc, address=address, port=port, username=username, host_key=host_key)
        if error is exc:
            raise
        raise error from exc
    transport = client.get_transport()
    if transport is not None and keepalive:
        transport.set_keepalive(keepalive)
    return client


@dataclass
class RunResult:
    exit_status: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out


def run(client: paramiko.SSHClient, command: str, *, timeout: float = 60.0, stdin=None,
        max_output: int = 1 << 20) -> RunResult:
    """Run ``command`` and wait at most ``timeout`` seconds. At most ``max_output`` bytes of
    each stream are kept; the rest is read and dropped, so a chatty program can neither stall
    nor exhaust us. ``stdin`` is bytes, str or a binary file (streamed). Closing the channel
    at the timeout does not kill a remote program that ignores SIGHUP: callers that must bound it wrap it in ``timeout -k 5 N`` on the machine."""
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise Unreachable("the SSH connection is closed")
    try:
        chan = transport.open_session(timeout=min(10.0, timeout))
        chan.exec_command(command)
        if hasattr(stdin, "read"):  # a file: stream it in chunks (e.g. a tar of an environment)
            while chunk := stdin.read(1 << 16):
                chan.sendall(chunk)
        elif stdin is not None:
            chan.sendall(stdin.encode() if isinstance(stdin, str) else stdin)
        chan.shutdown_write()
    except (paramiko.SSHException, EOFError, OSError) as exc:
        # The machine went away between the check above and the command (its sshd was killed,
        # the network dropped), or it stopped answering: one clear error, as for connect().
        reason = str(exc) or type(exc).__name__
        if not transport.is_active() or isinstance(exc, (EOFError, OSError)):
            raise Unreachable(f"the SSH connection was lost: {reason}") from exc
        raise SSHError(f"the machine did not start the command: {reason}") from exc
    out, err = bytearray(), bytearray()
    truncated = timed_out = False

    def keep(buf: bytearray, data: bytes) -> bool:
        room = max_output - len(buf)
        if room > 0:
            buf += data[:room]
        return len(data) > max(room, 0)

    deadline = time.monotonic() + timeout
    while True:
        got = False
        if chan.recv_ready():
            truncated |= keep(out, chan.recv(65536))
            got = True
        if chan.recv_stderr_ready():
            truncated |= keep(err, chan.recv_stderr(65536))
            got = True
        if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            break
        if time.monotonic() > deadline:
            timed_out = True
            break
        if not got:
            time.sleep(0.005)
    status = None if timed_out else chan.recv_exit_status()
    chan.close()
    return RunResult(status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), timed_out, truncated)
