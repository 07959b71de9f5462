"""Shared setup for the machine tests: an environment folder, and starting an attempt through
the same services the Start button uses, running the provisioning task's body in-process."""
import pwd
import subprocess
from pathlib import Path

from baseliner.attempts.models import Attempt
from baseliner.attempts.services import attempt_accept_rules
from baseliner.machines.models import Lease
from baseliner.machines.services import attempt_request_start, lease_provision, lease_teardown
from tests import factories


def make_environment_folder(root: Path, slug: str = "envdemo") -> str:
    folder = root / slug
    (folder / "files" / "src").mkdir(parents=True)
    (folder / "files" / "solve.py").write_text("print('starting solution')\n")
    (folder / "files" / "src" / "data.txt").write_text("data\n")
    (folder / "scoring").mkdir()
    (folder / "scoring" / "score.py").write_text("SECRET = 'scorer internals'\n")
    (folder / "scoring" / "run_score.sh").write_text("#!/bin/sh\necho 0.5\n")
    (folder / "scoring" / "run_score.sh").chmod(0o755)
    (folder / "reference").mkdir()
    (folder / "reference" / "solve.py").write_text("print('the hidden reference')\n")
    return slug


def start(attempt: Attempt) -> Lease:
    """Accept the rules, press Start, run the provisioning task body; the attempt's newest lease."""
    attempt_accept_rules(attempt=attempt)
    attempt_request_start(attempt=attempt, user=attempt.expert)
    lease = Lease.objects.filter(attempt=attempt).order_by("-created", "-pk").first()
    lease_provision(lease_id=lease.pk)
    lease.refresh_from_db()
    attempt.refresh_from_db()
    return lease


def new_attempt(**env_fields) -> Attempt:
    return factories.attempt(**env_fields)


def unix_user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def processes_of(uid: int) -> str:
    return subprocess.run(["pgrep", "-a", "-u", str(uid)], capture_output=True, text=True).stdout


def sshd_sessions_of(user: str) -> str:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return "\n".join(line for line in out.splitlines() if f"sshd: {user}" in line)


def teardown_all() -> None:
    for lease in Lease.objects.filter(state__in=Lease.LIVE_STATES):
        lease_teardown(lease=lease, reason="test cleanup")
