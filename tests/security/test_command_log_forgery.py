"""
From the expert's own browser terminal (real sshd, tmux, bash with the shell integration):
forging command-log markers. The command log is built from OSC 133-style markers the shell
prints (``baseliner/recording/shell.py``); each carries the lease's nonce.

What the nonce protects against: program output (``cat`` of a file, a download, a replayed
recording, another lease's markers) being taken for commands. What it does not: the expert's
own interactive bash must know it to print the markers, so the expert can print a valid one on
purpose; SECURITY.md says so, and the control below shows the path is real.
"""
import base64
import os
import re
import secrets
import time

import pytest

from baseliner.machines.models import Lease
from baseliner.recording.asciicast import read_asciicast
from baseliner.recording.models import CommandRecord, Recording
from baseliner.recording.services import recording_path
from baseliner.recording.shell import integration_paths
from tests.test_terminal import open_term, wait_for
from tests.workspace_support import *  # noqa: F401,F403
from tests.workspace_support import destroy_machine_attempt, make_machine_attempt

pytestmark = [pytest.mark.slow, pytest.mark.security,
              pytest.mark.skipif(os.geteuid() != 0, reason="per-lease Unix users need root")]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def forged(nonce: str, command: str, *, status: int = 0, passthrough: bool = True) -> str:
    """A start and an end marker for ``command`` as printed bytes, wrapped in tmux's DCS
    passthrough exactly as the real hooks do (so tmux forwards them to the bridge)."""
    bodies = [f"C;{nonce};1700000000.0;{b64('/etc')};{b64(command)}", f"D;{nonce};{status};1700000001.5"]
    if passthrough:
        return "".join(f"\x1bPtmux;\x1b\x1b]133;{b}\x07\x1b\\" for b in bodies)
    return "".join(f"\x1b]133;{b}\x07" for b in bodies)


def printf_arg(raw: str) -> str:
    """``raw`` as a single-quoted printf format (escapes as octal, nothing the shell expands)."""
    return "'" + "".join(f"\\{ord(c):03o}" if c in "\x1b\x07\\%'" else c for c in raw) + "'"


def result(t, name: str) -> str:
    """The value a command printed as ``<name>:<value>.`` (the typed line itself shows
    ``<name>:$...``, which does not match)."""
    pattern = re.compile(rf"{re.escape(name)}:(\w+)\.".encode())
    deadline = time.monotonic() + 10
    while not (match := pattern.search(bytes(t.out))):
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} not printed; got {bytes(t.out[-1500:])!r}")
        try:
            t._recv(0.5)
        except TimeoutError:
            pass
    return match.group(1).decode()


def test_forged_markers_from_the_experts_shell_log_nothing_and_real_commands_still_log(live_url, machine_attempt, machine_sshd):
    m = machine_attempt
    other = make_machine_attempt(machine_sshd)  # another expert on the same host, with a lease of its own
    try:
        own_nonce, other_nonce = m.lease.nonce, other.lease.nonce
        assert own_nonce and other_nonce and own_nonce != other_nonce
        guessed = secrets.token_urlsafe(24)
        # Another expert on the host cannot read this lease's nonce from its hooks file.
        hooks = integration_paths(home=m.home, machine_dir=f"/tmp/bl-machine-{m.unix_user}")["hooks"]
        peek = other.run_as_expert(f"cat {hooks}")
        assert not peek.ok and "Permission denied" in peek.stderr and own_nonce not in peek.stdout

        # A file of forged markers (a guessed nonce, the other lease's nonce, with and without
        # tmux's passthrough wrapping) that the expert then prints with cat.
        payload = "".join([
            forged(guessed, "FORGED-guessed-in-file"), forged(other_nonce, "FORGED-other-lease-in-file"),
            forged(guessed, "FORGED-raw-in-file", passthrough=False), forged(other_nonce, "FORGED-raw-other", passthrough=False),
            forged(f"{own_nonce[:-1]}x", "FORGED-near-miss"), forged(f"{own_nonce};x", "FORGED-extra-field"),
        ])
        m.run_as_expert("cat > markers.bin", stdin=payload)

        t = open_term(live_url, m)
        t.control_message("ready")
        t.send(f"printf {printf_arg(forged(guessed, 'FORGED-guessed-printf'))}; echo done-1\r")
        t.read_until("done-1\r\n")
        t.send(f"printf {printf_arg(forged(other_nonce, 'FORGED-other-lease-printf', status=9))}; echo done-2\r")
        t.read_until("done-2\r\n")
        t.send("cat markers.bin; echo done-3\r")
        t.read_until("done-3\r\n")
        t.send("true\r")
        t.send("false\r")
        t.send("(exit 7)\r")
        # The nonce is a plain, read-only shell variable: changing it fails, and no child
        # process sees it (not in env, not in a Python child's /proc/self/environ, not in bash -c).
        t.send("__bl_nonce=overwritten\r")
        t.send("echo R-status:$?.\r")
        assert result(t, "R-status") == "1"
        t.send("echo R-env:$(env | grep -c -e \"$__bl_nonce\" -e __bl_ -e __BL_).\r")
        assert result(t, "R-env") == "0", "the nonce or the integration's variables are in the environment"
        t.send("python3 -c 'import sys; e=open(\"/proc/self/environ\",\"rb\").read(); "
               "print(\"R-child:%s.\" % (sys.argv[1].encode() in e or b\"__bl\" in e))' \"$__bl_nonce\"\r")
        assert result(t, "R-child") == "False"
        t.send("bash -c 'echo R-var:${__bl_nonce:-unset}.'\r")
        assert result(t, "R-var") == "unset"
        # Control: the same bytes with the lease's real nonce *are* taken (so the forgeries above
        # reached the bridge and were refused for their nonce, not lost in tmux). The expert's
        # own bash knows the nonce: this is the documented limit, not a defence.
        t.send("printf '\\033Ptmux;\\033\\033]133;C;%s;1700000000.0;Lw==;%s\\007\\033\\\\' \"$__bl_nonce\" "
               f"{b64('CONTROL-real-nonce')}; echo done-4\r")
        t.read_until("done-4\r\n")
        t.send("echo last-$((6*7))\r")
        out = t.read_until("last-42\r\n").decode("utf-8", "replace")
        t.close()

        # The shell's own markers (two or three per command) never reach the page: the only
        # copies of the nonce in the output are the ones in the file's broken forgery.
        assert out.count(own_nonce) == payload.count(own_nonce) == 2, "the nonce leaked into the terminal output"

        records = wait_for(lambda: (rs := list(CommandRecord.objects.filter(attempt=m.attempt).order_by("started_at", "pk")))
                           and any(r.command == "echo last-$((6*7))" and r.exit_status == 0 for r in rs) and rs)
        commands = [r.command for r in records]
        assert not [c for c in commands if c.startswith("FORGED")], commands
        assert not CommandRecord.objects.filter(attempt=other.attempt).exists()
        status = {r.command: r.exit_status for r in records}
        assert status["true"] == 0 and status["false"] == 1 and status["(exit 7)"] == 7
        assert status["cat markers.bin; echo done-3"] == 0
        assert status["__bl_nonce=overwritten"] == 1
        assert "CONTROL-real-nonce" in commands  # the limit, made visible
        # The same in the recording (the bridge strips valid markers before recording).
        recording = wait_for(lambda: Recording.objects.filter(attempt=m.attempt, ended_at__isnull=False).first())
        _, events = read_asciicast(recording_path(recording))
        assert "".join(e[2] for e in events).count(own_nonce) == 2
        assert Lease.objects.get(pk=m.lease.pk).nonce == own_nonce
    finally:
        destroy_machine_attempt(other)
