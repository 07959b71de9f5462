"""
The machine holds the deadline: a small root-owned guard on the expert's machine.

The web app, the Celery workers and the broker may all be down when time runs out; the
limit must hold anyway. So at clock start (and whenever the deadline moves: pause, resume,
extension, end) baseliner writes the deadline, as Unix seconds, to a root-only file on the
machine and makes sure a detached root process, the *guard*, is watching it::

    <machine_dir>/clock/            root:root 0700 (the expert cannot read or change it)
        deadline                    "1767225600" | "paused" | "ended"
        guard.sh, guard.pid         the guard (a POSIX sh loop, checks once a second)
        fired                       when the guard locked the user, for the record
        shell                       the expert's login shell, to restore on resume

At the deadline (or on "ended") the guard locks the expert's account (``usermod -L`` and a
nologin shell: OpenSSH refuses both) and kills every process of the expert, then exits.
"paused" makes it idle; a missing file (the lease was torn down) makes it exit. The guard
does not depend on anything but ``sh``, ``date``, ``pkill`` and ``usermod``.

A pause *freezes* the expert instead: account locked, every process stopped (SIGSTOP), so
nothing runs while the clock stands still; resume thaws them (SIGCONT) and unlocks.

Each function here takes ``run``, a callable that runs one shell command as root on the
machine and returns ``provisioning.ssh.RunResult``; ``machine_*`` wrappers at the bottom
find the attempt's lease and use ``lease_run``.
"""
from __future__ import annotations

import logging
import shlex
from collections.abc import Callable

from provisioning.ssh import RunResult

from . import clock

log = logging.getLogger(__name__)

Run = Callable[[str], RunResult]

GUARD_TAG = "baseliner-guard"

# Shell functions shared by the guard and the one-off commands. $U is the expert, $D the clock dir.
_FUNCTIONS = r"""
bl_save_shell() {
  [ -s "$D/shell" ] && return 0
  s=$(getent passwd "$U" | cut -d: -f7)
  case "$s" in */nologin|*/false|'') s=/bin/bash ;; esac
  printf '%s\n' "$s" > "$D/shell"
}
bl_lock_account() {
  bl_save_shell
  usermod -L -s /usr/sbin/nologin "$U" >/dev/null 2>&1 || true
}
bl_unlock_account() {
  # Only undo our own lock (the saved shell says we locked it).
  s=$(cat "$D/shell" 2>/dev/null); [ -n "$s" ] || return 0
  usermod -U -s "$s" "$U" >/dev/null 2>&1 || true
  rm -f "$D/shell"
}
bl_signal_all() {
  # Repeat: a process may fork while we signal its parent.
  for _ in 1 2 3 4 5; do pkill "$1" -u "$U" >/dev/null 2>&1 || true; sleep 0.1; done
}
bl_kill_all() { bl_lock_account; bl_signal_all -KILL; }
"""

_GUARD = r"""#!/bin/sh
# baseliner deadline guard (see baseliner/attempts/machine_guard.py). Runs as root, detached.
D="$2"; U="$3"
cd / || exit 1
echo $$ > "$D/guard.pid"
@FUNCTIONS@
while :; do
  [ -f "$D/deadline" ] || exit 0
  v=$(cat "$D/deadline" 2>/dev/null)
  case "$v" in
    paused|'') ;;
    ended) bl_kill_all; date +%s > "$D/fired"; exit 0 ;;
    *[!0-9]*) ;;
    *) if [ "$(date +%s)" -ge "$v" ]; then bl_kill_all; date +%s > "$D/fired"; exit 0; fi ;;
  esac
  sleep 1
done
"""


def clock_dir(machine_dir: str) -> str:
    return machine_dir.rstrip("/") + "/clock"


def _preamble(*, user: str, machine_dir: str) -> str:
    d = clock_dir(machine_dir)
    return f"set -u\nU={shlex.quote(user)}\nD={shlex.quote(d)}\nmkdir -p \"$D\" && chmod 0700 \"$D\"\n{_FUNCTIONS}\n"


def _write_deadline(value: str) -> str:
    return f"printf '%s\\n' {shlex.quote(value)} > \"$D/deadline.tmp\" && mv -f \"$D/deadline.tmp\" \"$D/deadline\"\n"


def _ensure_guard() -> str:
    script = _GUARD.replace("@FUNCTIONS@", _FUNCTIONS)
    return (
        f"cat > \"$D/guard.sh\" <<'BASELINER_GUARD'\n{script}BASELINER_GUARD\n"
        "pid=$(cat \"$D/guard.pid\" 2>/dev/null || true)\n"
        f"if [ -n \"$pid\" ] && kill -0 \"$pid\" 2>/dev/null && grep -q {GUARD_TAG} \"/proc/$pid/cmdline\" 2>/dev/null; then\n"
        "  echo guard-running\n"
        "else\n"
        f"  setsid nohup sh \"$D/guard.sh\" {GUARD_TAG} \"$D\" \"$U\" </dev/null >/dev/null 2>&1 &\n"
        "  echo guard-started\n"
        "fi\n"
    )


def _check(result: RunResult, what: str) -> RunResult:
    if not result.ok:
        raise GuardError(f"{what} failed on the machine (exit {result.exit_status}): {(result.stderr or result.stdout).strip()[:500]}")
    return result


class GuardError(RuntimeError):
    pass


def guard_set_deadline(run: Run, *, user: str, machine_dir: str, deadline_epoch: int) -> RunResult:
    """Tell the machine the deadline (Unix seconds) and make sure the guard watches it."""
    cmd = _preamble(user=user, machine_dir=machine_dir) + _write_deadline(str(int(deadline_epoch))) + _ensure_guard()
    return _check(run(cmd), "setting the deadline")


def user_freeze(run: Run, *, user: str, machine_dir: str) -> RunResult:
    """Pause: the guard idles, the account is locked and every process of the expert stopped."""
    cmd = _preamble(user=user, machine_dir=machine_dir) + _write_deadline("paused") + "bl_lock_account\nbl_signal_all -STOP\n"
    return _check(run(cmd), "freezing the expert's processes")


def user_thaw(run: Run, *, user: str, machine_dir: str, deadline_epoch: int) -> RunResult:
    """Resume: new deadline, guard watching, account unlocked, processes continued."""
    cmd = (_preamble(user=user, machine_dir=machine_dir) + _write_deadline(str(int(deadline_epoch))) + _ensure_guard()
           + "bl_unlock_account\nbl_signal_all -CONT\n")
    return _check(run(cmd), "resuming the expert's processes")


def user_lock(run: Run, *, user: str, machine_dir: str) -> RunResult:
    """The end: account locked, every process of the expert killed, guard told to stop."""
    cmd = _preamble(user=user, machine_dir=machine_dir) + _write_deadline("ended") + "bl_kill_all\n"
    return _check(run(cmd), "locking the expert out")


def user_message(run: Run, *, user: str, text: str) -> RunResult:
    """Print ``text`` in every terminal the expert has open (tmux panes and SSH sessions)."""
    line = "\r\n\x1b[1;33m*** baseliner: " + text.replace("'", "") + " ***\x1b[0m\r\n"
    cmd = (f"U={shlex.quote(user)}\n"
           "for t in $(ps -o tty= -u \"$U\" 2>/dev/null | grep -E '^pts/' | sort -u); do\n"
           f"  printf '%b' {shlex.quote(line)} > \"/dev/$t\" 2>/dev/null || true\n"
           "done\n")
    return run(cmd)


# --- the attempt's machine ----------------------------------------------------------------
def _lease_and_run(attempt):
    """(lease, run) for the attempt's live machine, or (None, None) when it has none."""
    try:
        from baseliner.machines.services import lease_for_attempt, lease_run
    except ImportError:  # the machines app does not provide the contract yet
        return None, None
    lease = lease_for_attempt(attempt=attempt)
    if lease is None or not lease.username or not (lease.provider_state or {}).get("machine_dir"):
        return None, None
    if lease.state not in ("ready", "unhealthy"):
        return None, None

    def run(command: str) -> RunResult:
        return lease_run(lease=lease, command=command, as_admin=True, timeout=30)

    return lease, run


def machine_sync_clock(*, attempt) -> str:
    """Make the machine's guard agree with the attempt's clock (running, paused or ended).
    Returns what was done, for logs and the end-step record."""
    lease, run = _lease_and_run(attempt)
    if lease is None:
        return "no machine"
    md, user = lease.provider_state["machine_dir"], lease.username
    if attempt.ended_at is not None:
        user_lock(run, user=user, machine_dir=md)
        return "locked"
    if attempt.paused_at is not None:
        user_freeze(run, user=user, machine_dir=md)
        return "frozen"
    user_thaw(run, user=user, machine_dir=md, deadline_epoch=clock.epoch(clock.deadline(attempt)))
    return "deadline set"


def machine_message(*, attempt, text: str) -> bool:
    lease, run = _lease_and_run(attempt)
    if lease is None:
        return False
    try:
        user_message(run, user=lease.username, text=text)
    except Exception:  # a printed note is best effort; the page shows it too
        log.warning("could not print a message on attempt %s's machine", attempt.pk, exc_info=True)
        return False
    return True
