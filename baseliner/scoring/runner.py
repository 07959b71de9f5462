"""
Running a scorer on the attempt's machine, and turning whatever happened into an Outcome.

Threat model (what the expert controls, and what stops them):

* The expert is an ordinary Unix user on the machine who may run anything as themself. The
  scorer program, its protected inputs (``protected_dir``: root-owned, group
  ``protected_group``, 0750) and the machine's copy of the score log live where the expert
  cannot read, write or replace them; the hidden reference solution never leaves the app host;
  the authoritative score log is the database, reached only through the app.
* A native scorer runs as ``scorer_user`` (in the protected group, never the expert), started
  by root through SSH, inside ``timeout -k`` with the environment's limit, its output cut on
  the machine at the environment's cap (so 50 MB of output never crosses the wire), with a
  scrubbed environment. Leftover scorer processes are killed after every run.
* The expert's code is the one untrusted input. A scorer runs it *in a child process as the
  expert* (``$BASELINER_AS_EXPERT``: a sudo rule letting only this lease's scorer user act as
  this lease's expert, installed by ``prepare.py``), so the solution cannot read the scorer's
  files, ptrace the scorer, or print the result: the scorer reads only the child's answer and
  checks it against its own computation on a fresh input drawn from the OS, and times the
  child from outside where it can. What remains trusted: a solution can still waste its own
  time budget, and a timing taken inside the child (GPU kernels) relies on the scorer checking
  the output of the very calls it timed.
* METR Task Standard families run their operations as root, as the standard specifies (their
  own ``intermediate_score`` usually drops to the agent user for the solution), inside a
  private mount namespace that shows the lease's home at ``/home/agent`` and its protected
  folder at ``/protected``.
"""
from __future__ import annotations

import hashlib
import json
import shlex
import time

from django.conf import settings

from .machine.protocol import ProtocolError, log_part, parse_result
from .models import ScoreEntry
from .services import Outcome

STATUS_MARK = "__BASELINER_EXIT__="
LOG_TAIL = 20_000


def q(value) -> str:
    return shlex.quote(str(value))


def lease_paths(lease) -> dict:
    st = lease.provider_state or {}
    missing = [k for k in ("home", "protected_dir", "protected_group", "scorer_user", "machine_dir") if not st.get(k)]
    if missing:
        raise RuntimeError(f"lease {lease.pk} has no {', '.join(missing)} in provider_state")
    return {"home": st["home"], "protected": st["protected_dir"], "group": st["protected_group"], "scorer": st["scorer_user"],
            "machine_dir": st["machine_dir"], "expert": lease.username, "env": dict(st.get("env") or {}),
            "insecure": bool(st.get("insecure"))}


def venv_dir(environment) -> str | None:
    """Where the environment's requirements.txt is installed on a machine (shared by leases
    of the same requirements, built once by ``prepare.py``)."""
    reqs = (environment.scoring or {}).get("requirements")
    if not reqs:
        return None
    python = environment.scoring.get("python", "python3")
    digest = hashlib.sha256(f"{python}\n{reqs}".encode()).hexdigest()[:16]
    return f"/opt/baseliner/venvs/{environment.slug}-{digest}"


def machine_python(environment) -> str:
    venv = venv_dir(environment)
    return f"{venv}/bin/python" if venv else (environment.scoring or {}).get("python", "python3")


def _scorer_env(paths: dict, environment) -> str:
    venv = venv_dir(environment)
    path = (f"{venv}/bin:" if venv else "") + "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    scratch = f"{paths['machine_dir']}/scratch"
    # The provider's environment (e.g. CUDA_VISIBLE_DEVICES: this lease's GPU) reaches the
    # scorer and, through sudo (which resets the environment), the expert's child process.
    provider_env = " ".join(f"{k}={q(v)}" for k, v in sorted(paths["env"].items()))
    as_expert = "" if paths["insecure"] else f"sudo -n -u {paths['expert']} -H -- env {provider_env}".rstrip()
    pairs = {
        **paths["env"],
        "PATH": path, "HOME": scratch, "TMPDIR": scratch, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
        "BASELINER_HOME": paths["home"], "BASELINER_PROTECTED": paths["protected"], "BASELINER_EXPERT_USER": paths["expert"],
        "BASELINER_AS_EXPERT": as_expert, "BASELINER_PYTHON": machine_python(environment),
    }
    return " ".join(f"{k}={q(v)}" for k, v in pairs.items())


def native_command(paths: dict, environment) -> str:
    command = environment.scoring["command"]
    if paths["insecure"]:  # the local provider's development mode: everything is one user
        return f"env -i {_scorer_env(paths, environment)} sh -c {q(command)}"
    return f"runuser -u {q(paths['scorer'])} -- env -i {_scorer_env(paths, environment)} sh -c {q(command)}"


def metr_command(paths: dict, environment, operation: str, extra: str = "") -> str:
    """The task helper as root in a private mount namespace (/home/agent and /protected)."""
    meta = environment.scoring["metr"]
    family, task = meta["family"], meta["task"]
    inner = (
        "set -e; mkdir -p /home/agent /protected; "
        f"mount --bind {q(paths['home'])} /home/agent; mount --bind {q(paths['protected'])} /protected; "
        f"cd /protected/{q(family)}; "
        f"exec env -i {_scorer_env(paths, environment)} HOME=/root "
        f"{q(machine_python(environment))} {q(paths['machine_dir'] + '/taskhelper.py')} {q(family)} {q(task)} {operation} {extra}"
    )
    return f"unshare --mount --propagation private bash -c {q(inner)}"


def bounded(inner: str, *, paths: dict, timeout: int, cap: int, cwd: str) -> str:
    """``inner`` under ``timeout -k``, output cut at ``cap`` bytes on the machine, exit status
    reported on stderr, and every leftover scorer process killed."""
    kill = "" if paths["insecure"] else f"pkill -KILL -u {q(paths['scorer'])} >/dev/null 2>&1; "
    return "bash -c " + q(
        f"cd {q(cwd)} || exit 90\n"
        f"timeout -k 5 {int(timeout)} {inner} 2>&1 | head -c {int(cap) + 1}\n"
        f'echo "{STATUS_MARK}${{PIPESTATUS[0]}}" >&2\n'
        f"{kill}find {q(paths['machine_dir'] + '/scratch')} -mindepth 1 -delete >/dev/null 2>&1; true\n"
    )


def _message_text(message) -> str:
    if isinstance(message, str):
        return message
    if isinstance(message, dict):
        return "; ".join(f"{k}: {v}" for k, v in message.items()) if message else ""
    return "" if message is None else str(message)


def interpret(*, stdout: str, exit_status: int | None, seconds: float, timeout: int, cap: int, ssh_timed_out: bool = False) -> Outcome:
    """What a run's output and exit status mean for the score log."""
    err = ScoreEntry.Status.ERROR
    details = {"exit_status": exit_status, "seconds": round(seconds, 3), "log_tail": log_part(stdout)[-LOG_TAIL:] or stdout[-LOG_TAIL:]}
    if len(stdout.encode("utf-8", "replace")) > cap:
        mb = cap / (1 << 20)
        return Outcome(None, err, f"The scorer printed more than {mb:g} MB of output, so it was stopped; this run does not count. "
                                  "Print less (e.g. no per-element output) and score again.", details, seconds)
    if ssh_timed_out or exit_status == 124 or (exit_status in (137, -9) and seconds >= timeout - 1):
        return Outcome(None, err, f"Scoring did not finish within its {timeout} s limit and was stopped; this run does not count.", details, seconds)
    if exit_status in (137, -9):
        return Outcome(None, err, "The scorer was killed (it probably ran out of memory); this run does not count.", details, seconds)
    try:
        result = parse_result(stdout)
    except ProtocolError as exc:
        tail = " | ".join(stdout.strip().splitlines()[-3:])[-300:]
        what = f"crashed (exit status {exit_status})" if exit_status else f"gave no result ({exc})"
        return Outcome(None, err, f"The scorer {what}; this run does not count." + (f" Last output: {tail}" if tail else ""), details, seconds)
    if exit_status not in (0, None):
        return Outcome(None, err, f"The scorer crashed (exit status {exit_status}) after printing a result; this run does not count.", details, seconds)
    extra = result.get("details")
    if isinstance(extra, dict):
        details.update(extra)
    elif extra is not None:
        details["scorer_details"] = extra
    message = _message_text(result.get("message"))
    score = result.get("score")
    if score is None:
        return Outcome(None, ScoreEntry.Status.INVALID, message or "The solution was not accepted.", details, seconds)
    return Outcome(score, ScoreEntry.Status.OK, message, details, seconds)


def scorer_execute(*, attempt, lease, environment) -> Outcome:
    """Run ``environment``'s scorer on ``lease``'s machine and interpret the result."""
    from baseliner.machines.services import lease_run

    paths = lease_paths(lease)
    timeout = int(environment.scoring_timeout_seconds)
    cap = int((environment.scoring or {}).get("output_limit_bytes") or settings.SCORING_OUTPUT_LIMIT_BYTES)
    if environment.source == "metr":
        inner = metr_command(paths, environment, "intermediate_score")
    else:
        inner = native_command(paths, environment)
    command = bounded(inner, paths=paths, timeout=timeout, cap=cap, cwd=paths["protected"])
    started = time.monotonic()
    result = lease_run(lease=lease, command=command, as_admin=True, timeout=timeout + 30, max_output=cap + 64 * 1024)
    seconds = time.monotonic() - started
    status = None
    for line in reversed(result.stderr.splitlines()):
        if line.startswith(STATUS_MARK):
            try:
                status = int(line[len(STATUS_MARK):])
            except ValueError:
                pass
            break
    if status is None and not result.timed_out:
        status = result.exit_status
    return interpret(stdout=result.stdout, exit_status=status, seconds=seconds, timeout=timeout, cap=cap,
                     ssh_timed_out=result.timed_out)


def machine_log_append(*, lease, entry: ScoreEntry) -> None:
    """Append ``entry`` to the machine's copy of the log (``protected_dir/score_log.jsonl``,
    root-owned, readable by the scorer group only), which METR ``aggregate_scores`` reads."""
    from baseliner.machines.services import lease_run

    paths = lease_paths(lease)
    line = json.dumps({
        "sequence": entry.sequence, "scoredAt": entry.created.isoformat(), "elapsedTime": entry.elapsed_seconds,
        "score": entry.raw_score if entry.raw_score is not None else float("nan"), "status": entry.status,
        "message": entry.message,
    }) + "\n"
    path = f"{paths['protected']}/score_log.jsonl"
    lease_run(lease=lease, command=f"umask 027; cat >> {q(path)} && chown root:{q(paths['group'])} {q(path)} && chmod 0640 {q(path)}",
              as_admin=True, timeout=30, stdin=line)
