"""
The scoring preparation hook (``settings.BASELINER_PREPARE_HOOKS``): after issue 3 made the
users, the home with ``files/`` and ``protected_dir`` with ``scoring/``, this installs what
scoring needs on the machine. Raises PrepareError (preparation then fails and is retried).

* ``machine_dir/bin/score`` and ``score_log`` (on the expert's PATH), ``machine_dir/score.json``
  (the app's URL) and the per-lease bearer token in ``~/.baseliner/score_token`` (0600);
* ``machine_dir/taskhelper.py`` for METR families, whose folder goes to ``protected_dir/<family>``
  and whose ``install`` and ``start`` run here, as root;
* the environment's ``requirements.txt`` in a virtualenv under ``/opt/baseliner/venvs``;
* a scratch folder for the scorer user, read access (ACL) for the protected group to the
  expert's home, and the sudo rule that lets the scorer run the solution *as the expert*.
"""
from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

from django.conf import settings

from baseliner.catalog.services import environment_path
from provisioning import ssh

from .runner import bounded, lease_paths, metr_command, q, venv_dir
from .services import machine_token_issue

MACHINE_FILES = Path(__file__).resolve().parent / "machine"
PATH_LINE = "# baseliner: score and score_log\nexport PATH=\"{bin}:$PATH\"\n"


class PrepareError(RuntimeError):
    pass


def _tar(files: dict[str, tuple[bytes, int]] | None = None, folder: Path | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, (data, mode) in (files or {}).items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, time.time()  # not 1970
            tar.addfile(info, io.BytesIO(data))
        if folder is not None:
            for p in sorted(folder.rglob("*")):
                if p.is_symlink() or "__pycache__" in p.parts:
                    continue
                tar.add(p, arcname=p.relative_to(folder).as_posix(), recursive=False)
    return buf.getvalue()


def _run(client, command: str, *, what: str, timeout: float = 120, stdin: bytes | str | None = None) -> ssh.RunResult:
    result = ssh.run(client, command, timeout=timeout, stdin=stdin)
    if not result.ok:
        detail = (result.stderr or result.stdout).strip()[-1500:]
        raise PrepareError(f"scoring preparation failed while {what} (exit {result.exit_status}, timed out {result.timed_out}): {detail}")
    return result


def prepare_scoring(*, lease, client, environment) -> None:
    p = lease_paths(lease)
    home, mdir, group, scorer, expert = p["home"], p["machine_dir"], p["group"], p["scorer"], p["expert"]

    # 1. Our own programs and the app's address (root-owned, world-readable: nothing secret).
    files = {
        "bin/score": ((MACHINE_FILES / "score").read_bytes(), 0o755),
        "bin/score_log": ((MACHINE_FILES / "score").read_bytes(), 0o755),  # one program, two names
        "taskhelper.py": ((MACHINE_FILES / "taskhelper.py").read_bytes(), 0o644),
        "score.json": (json.dumps({"url": settings.BASELINER_PUBLIC_URL, "attempt": lease.attempt_id}).encode(), 0o644),
    }
    _run(client, f"mkdir -p {q(mdir)} && tar -xzf - -C {q(mdir)} --no-same-owner --no-overwrite-dir && chmod 0755 {q(mdir + '/bin')}",
         what="installing the score command", stdin=_tar(files))

    # 2. The token (only its hash is kept) and the PATH line, in the expert's home.
    token = machine_token_issue(lease=lease)
    path_line = PATH_LINE.format(bin=f"{mdir}/bin")
    _run(client, (
        f"set -e; d={q(home + '/.baseliner')}; mkdir -p \"$d\"; umask 077; cat > \"$d/score_token\"; "
        f"chown -R {q(expert)}: \"$d\"; chmod 0700 \"$d\"; chmod 0600 \"$d/score_token\"; "
        f"for f in .bashrc .profile; do t={q(home)}/$f; grep -qs 'baseliner: score and score_log' \"$t\" || "
        f"printf %s {q(path_line)} >> \"$t\"; chown {q(expert)}: \"$t\"; done"
    ), what="writing the score token", stdin=token + "\n")

    # 3. What separates the scorer from the expert (see _protect).
    if p["insecure"]:  # the local provider's development mode: one user, nothing to separate
        _run(client, f"mkdir -p {q(mdir + '/scratch')}", what="making the scorer's scratch folder")
    else:
        _protect(client, p)

    # 4. The environment's Python packages, once per machine and requirements.
    venv = venv_dir(environment)
    if venv:
        python = environment.scoring.get("python", "python3")
        reqs = environment.scoring["requirements"]
        # The interpreter must be usable by the expert and scorer users, so a system-wide one
        # comes first (root's PATH may lead to a private pyenv), and a venv they cannot run is rebuilt.
        _run(client, (
            f"set -e; v={q(venv)}; py=''; mkdir -p /opt/baseliner/venvs; exec 9>\"$v.lock\"; flock 9; "
            f"for c in /usr/bin/{q(python)} /usr/local/bin/{q(python)} \"$(command -v {q(python)} || true)\"; do "
            f"[ -x \"$c\" ] && {{ py=$c; break; }}; done; "
            f"[ -n \"$py\" ] || {{ echo 'no {python} on this machine' >&2; exit 3; }}; "
            f"if [ ! -f \"$v/.complete\" ] || ! runuser -u nobody -- \"$v/bin/python\" -c '' 2>/dev/null; then "
            f"rm -rf \"$v\"; \"$py\" -m venv \"$v\"; cat > \"$v/requirements.txt\"; "
            f"\"$v/bin/pip\" install -q --disable-pip-version-check -r \"$v/requirements.txt\"; chmod -R a+rX \"$v\"; "
            f"runuser -u nobody -- \"$v/bin/python\" -c '' || {{ echo \"$py cannot be run by other users\" >&2; exit 4; }}; "
            f"touch \"$v/.complete\"; fi; "
            f"grep -qs 'baseliner: environment venv' {q(home + '/.bashrc')} || printf '# baseliner: environment venv\\nexport PATH=\"%s/bin:$PATH\"\\n' \"$v\" | tee -a {q(home + '/.bashrc')} >> {q(home + '/.profile')}"
        ), what=f"installing {environment.slug}'s requirements", timeout=1800, stdin=reqs)

    # 5. METR families: the family's code goes to the protected folder; install and start run as root.
    if environment.source == "metr":
        folder = environment_path(environment=environment)
        if folder is None:
            raise PrepareError(f"the folder of {environment} is not on the app host (run sync_environments)")
        family = environment.scoring["metr"]["family"]
        dest = f"{p['protected']}/{family}"
        _run(client, f"set -e; mkdir -p {q(dest)}; tar -xzf - -C {q(dest)} --no-same-owner; chown -R root:{q(group)} {q(dest)}; chmod -R g+rX,o-rwx {q(dest)}",
             what="copying the task family", stdin=_tar(folder=folder))
        for operation in ("install", "start"):
            cmd = bounded(metr_command(p, environment, operation), paths=p, timeout=1800, cap=1 << 20, cwd=p["protected"])
            result = ssh.run(client, cmd, timeout=1830)
            if "__BASELINER_EXIT__=0" not in result.stderr:
                raise PrepareError(f"TaskFamily.{operation} failed: {(result.stdout + result.stderr).strip()[-1500:]}")
        # Families write into /home/agent as root and expect the agent to own it.
        _run(client, f"chown -R {q(expert)}: {q(home)}", what="handing the task's files to the expert")


def _protect(client, p: dict) -> None:
    """The scorer's scratch folder, read access (ACL) for the scorer group to the expert's
    files (never to the token), and the sudo rule letting the scorer run the solution as the
    expert. The rule's file is removed by the lease teardown (shared_host.TEARDOWN_SCRIPT)."""
    home, mdir, group, scorer, expert = p["home"], p["machine_dir"], p["group"], p["scorer"], p["expert"]
    sudoers = f"/etc/sudoers.d/baseliner-{scorer}"
    rule = f"Defaults:{scorer} !requiretty\n{scorer} ALL=({expert}) NOPASSWD: ALL\n"
    _run(client, (
        f"set -e; install -d -o {q(scorer)} -g {q(group)} -m 0700 {q(mdir + '/scratch')}; "
        f"setfacl -m g:{q(group)}:rx {q(home)}; setfacl -R -m g:{q(group)}:rX {q(home)}; setfacl -R -d -m g:{q(group)}:rX {q(home)}; "
        f"setfacl -R -b {q(home + '/.baseliner')}; chmod 0700 {q(home + '/.baseliner')}; chmod 0600 {q(home + '/.baseliner/score_token')}; "
        f"umask 337; cat > {q(sudoers + '.tmp')}; visudo -cqf {q(sudoers + '.tmp')}; mv {q(sudoers + '.tmp')} {q(sudoers)}"
    ), what="setting up the scorer's permissions", stdin=rule)
