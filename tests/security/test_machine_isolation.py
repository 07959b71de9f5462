"""
From the expert's own shell on a real ``local`` machine (the app's own host, over SSH on
loopback): what an expert must not reach. These tests log in as the expert with the lease's
own key and try.

The app's folders are laid out as a default checkout has them (world-readable), so the
tests prove that provisioning itself makes them private, not that a test happened to put
them in a private temp dir.
"""
import os
import secrets
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from baseliner.machines.services import lease_run
from provisioning import base
from provisioning.local import LocalProvider
from tests.machines_helpers import make_environment_folder, new_attempt, start, teardown_all

pytestmark = [pytest.mark.slow, pytest.mark.security,
              pytest.mark.skipif(os.geteuid() != 0, reason="per-lease Unix users need root")]


def _world_readable_tree(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if p.is_dir() else 0))


@pytest.fixture
def app_host(settings, db):
    """The app's folders in a world-readable place, as on a fresh checkout run as root."""
    root = Path(tempfile.mkdtemp(prefix="bl-apphost-"))
    root.chmod(0o755)
    envs, var = root / "environments", root / "var"
    envs.mkdir()
    slug = make_environment_folder(envs)
    (var / "recordings" / "1").mkdir(parents=True)
    (var / "recordings" / "1" / "main.cast").write_text('{"version": 2} another expert typed this')
    (var / "baseliner.sqlite3").write_text("every attempt, session and score of the deployment")
    _world_readable_tree(root)
    settings.MACHINE_PROVIDER = "local"
    settings.ENVIRONMENTS_DIR = envs
    settings.VAR_DIR = var
    settings.RECORDINGS_DIR = var / "recordings"
    settings.LOCAL_SSHD_DIR = var / "machines" / "local-sshd"
    settings.BASELINER_PREPARE_HOOKS = []
    base.get_provider.cache_clear()
    yield {"root": root, "envs": envs, "var": var, "slug": slug}
    teardown_all()
    LocalProvider().sshd().stop()
    shutil.rmtree(root, ignore_errors=True)


def as_expert(lease, command: str):
    return lease_run(lease=lease, as_admin=False, command=command, timeout=30)


def test_the_expert_cannot_read_the_reference_the_scorer_source_or_the_apps_data(app_host):
    attempt = new_attempt(source_path=app_host["slug"])
    lease = start(attempt)
    assert lease.state == "ready", lease.error
    env = app_host["envs"] / app_host["slug"]
    attempts = {
        "the reference solution": f"cat {env}/reference/solve.py",
        "the reference folder": f"ls {env}/reference",
        "the scorer's source on the app host": f"cat {env}/scoring/score.py",
        "the database file": f"cat {app_host['var']}/baseliner.sqlite3",
        "other experts' recordings": f"cat {app_host['var']}/recordings/1/main.cast",
        "the machines' sshd host key": f"cat {app_host['var']}/machines/local-sshd/ssh_host_ed25519_key",
        "the app's environment (DATABASE_URL, SECRET_KEY)": f"cat /proc/{os.getpid()}/environ",
    }
    leaked = {}
    for what, command in attempts.items():
        result = as_expert(lease, command)
        if result.exit_status == 0 or result.stdout.strip():
            leaked[what] = result.stdout[:200]
    assert not leaked, f"the expert could read: {leaked}"
    # The control: the same shell reads its own starting files.
    assert as_expert(lease, "cat solve.py").stdout == "print('starting solution')\n"


def test_experts_on_one_host_cannot_see_or_touch_each_others_files_or_processes(app_host):
    alice = start(new_attempt(source_path=app_host["slug"]))
    bob = start(new_attempt(source_path=app_host["slug"]))
    secret = secrets.token_hex(8)
    bob_home, bob_protected = bob.provider_state["home"], bob.provider_state["protected_dir"]
    assert as_expert(bob, f"echo {secret} > ~/notes.txt && chmod 644 ~/notes.txt").ok
    pid = as_expert(bob, "setsid sleep 600 >/dev/null 2>&1 < /dev/null & echo $!").stdout.strip()
    assert pid.isdigit()
    attacks = {
        "read bob's file": f"cat {bob_home}/notes.txt",
        "list bob's home": f"ls {bob_home}",
        "write into bob's home": f"touch {bob_home}/planted && echo planted",
        "read bob's starting solution": f"cat {bob_home}/solve.py",
        "list bob's protected scorer": f"ls {bob_protected}",
        "signal bob's process": f"kill -9 {pid} && echo killed",
        "read bob's process environment": f"cat /proc/{pid}/environ",
        "read bob's process working folder": f"ls /proc/{pid}/cwd/",
        "become bob": f"su - {bob.username} -c id </dev/null",
        "sudo": "sudo -n id",
    }
    succeeded = {}
    for what, command in attacks.items():
        result = as_expert(alice, command)
        if result.exit_status == 0 or secret in result.stdout or "planted" in result.stdout or "killed" in result.stdout:
            succeeded[what] = (result.exit_status, result.stdout[:200])
    assert not succeeded, f"alice could: {succeeded}"
    assert as_expert(bob, f"cat ~/notes.txt; kill -0 {pid} && echo alive").stdout.split() == [secret, "alive"]
