"""The ``local`` provider against its real loopback sshd: provision, use, protect, tear down."""
import json
import os
import time

import pytest

from baseliner.attempts.states import State
from baseliner.audit.models import AuditEvent
from baseliner.machines.models import Lease
from baseliner.machines.services import (
    attempt_request_start,
    lease_client,
    lease_for_attempt,
    lease_health_check,
    lease_run,
    lease_teardown,
    machine_status,
)
from provisioning import base, ssh
from provisioning.base import ProvisionError
from provisioning.local import LocalProvider
from tests.machines_helpers import (
    make_environment_folder,
    new_attempt,
    processes_of,
    sshd_sessions_of,
    start,
    teardown_all,
    unix_user_exists,
)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="per-lease Unix users need root")]


@pytest.fixture
def attempt(local, settings):
    return new_attempt(source_path=make_environment_folder(settings.ENVIRONMENTS_DIR))


def test_provision_run_as_the_expert_protected_dir_and_a_clean_teardown(local, attempt):
    lease = start(attempt)
    assert (attempt.state, lease.state, lease.progress) == (State.RUNNING, Lease.State.READY, 100)
    assert attempt.started_at == lease.ready_at  # the clock starts when the machine is ready, not before
    state = lease.provider_state
    user, home, protected = lease.username, state["home"], state["protected_dir"]
    assert lease_for_attempt(attempt=attempt) == lease
    assert set(json.loads(lease.credentials())) == {"expert_key", "admin_key", "admin_user"}

    # The expert's files are in their home and theirs; the reference solution never left.
    out = lease_run(lease=lease, as_admin=False, command="id -un; pwd; cat solve.py src/data.txt; stat -c %U solve.py; "
                    "head -1 instructions.md; ls")
    assert out.ok, out.stderr
    assert out.stdout.splitlines()[:6] == [user, home, "print('starting solution')", "data", user, "# Do the thing"]
    assert "reference" not in out.stdout
    # The instructions baseliner writes are dated when the machine was prepared, not 1970.
    written = float(lease_run(lease=lease, as_admin=False, command="stat -c %Y instructions.md").stdout)
    assert abs(time.time() - written) < 600, written

    # The expert can neither read nor write the protected scoring folder...
    for command in (f"ls {protected}", f"cat {protected}/score.py", f"touch {protected}/x",
                    f"echo hacked > {protected}/score.py", f"rm -f {protected}/run_score.sh"):
        result = lease_run(lease=lease, as_admin=False, command=command)
        assert result.exit_status != 0, command
        assert "Permission denied" in result.stderr, command
    # ...while the scorer user can read and run it.
    scorer = state["scorer_user"]
    result = lease_run(lease=lease, command=f"runuser -u {scorer} -- sh -c 'cat {protected}/score.py; {protected}/run_score.sh'")
    assert result.stdout == "SECRET = 'scorer internals'\n0.5\n", result.stderr
    assert lease_run(lease=lease, command=f"stat -c '%U:%G %a' {protected}").stdout.strip() == f"root:{state['protected_group']} 750"

    # Leave things running: a background process, a tmux server and an open SSH session.
    uid = state["uid"]
    lease_run(lease=lease, as_admin=False, command="nohup sleep 1000 >/dev/null 2>&1 & tmux new -d -s main 'sleep 999'")
    session = lease_client(lease=lease)
    assert ssh.run(session, "tmux ls").stdout.startswith("main:")
    assert processes_of(uid) and sshd_sessions_of(user)

    lease_teardown(lease=lease, reason="attempt ended")
    lease.refresh_from_db()
    assert lease.state == Lease.State.TORN_DOWN
    assert processes_of(uid) == ""
    assert sshd_sessions_of(user) == ""
    assert not unix_user_exists(user) and not unix_user_exists(scorer)
    assert not os.path.exists(home) and not os.path.exists(state["machine_dir"])
    with pytest.raises(Exception):
        ssh.run(session, "true", timeout=3)
    # The last local lease is gone, so is the loopback sshd.
    assert not local.sshd().is_running()
    assert AuditEvent.objects.filter(action="lease.teardown", attempt=attempt, reason="attempt ended").count() == 1

    # Idempotent: a second teardown is a no-op success.
    assert lease_teardown(lease=lease, reason="again").state == Lease.State.TORN_DOWN
    assert AuditEvent.objects.filter(action="lease.teardown", attempt=attempt).count() == 1


def test_keys_are_encrypted_at_rest_and_never_shown_to_the_expert(local, attempt, client):
    lease = start(attempt)
    private = json.loads(lease.credentials())["expert_key"]
    assert "PRIVATE KEY" not in lease.credentials_encrypted
    client.force_login(attempt.expert)
    page = client.get(f"/attempts/{attempt.pk}/").content.decode()
    status = client.get(f"/attempts/{attempt.pk}/machine/").content.decode()
    assert "Your machine is ready." in page
    for text in (page, status):
        assert "PRIVATE KEY" not in text and private.splitlines()[1] not in text


def test_a_changed_host_key_is_refused_with_a_clear_error(local, attempt):
    lease = start(attempt)
    sshd = local.sshd()
    sshd.stop()
    sshd.host_key_path.unlink()
    sshd.host_key_path.with_suffix(".pub").unlink()
    sshd.start()  # same port, new identity: as if another machine answered
    with pytest.raises(ssh.HostKeyMismatch, match=r"host key of 127.0.0.1:\d+ changed: expected SHA256:"):
        lease_run(lease=lease, command="true")
    lease_health_check(lease=lease)
    lease.refresh_from_db()
    assert lease.health_failures == 1 and "changed: expected SHA256:" in lease.error
    # Clean up for real: staff re-pin the key after checking it.
    lease.host_key = sshd.host_key
    lease.save(update_fields=["host_key"])


def failing_hook(*, lease, client, environment):
    """A preparation hook that fails after the user, home and scorer were made."""
    failing_hook.seen = (lease.username, lease.provider_state["home"],
                         ssh.run(client, f"id -u {lease.username}").ok)
    raise ProvisionError("scoring hook: pip install exploded", user_message="Installing the task's software failed.")


def test_a_failure_in_the_middle_of_provisioning_cleans_up_and_offers_a_retry(local, attempt, settings):
    settings.BASELINER_PREPARE_HOOKS = ["tests.test_machines_local.failing_hook"]
    lease = start(attempt)
    user, home, user_existed = failing_hook.seen
    assert user_existed is True
    assert (attempt.state, attempt.last_error) == (State.PROVISION_FAILED, "Installing the task's software failed.")
    assert attempt.started_at is None  # the clock never started
    assert lease.state == Lease.State.FAILED and "pip install exploded" in lease.error
    assert not unix_user_exists(user) and not os.path.exists(home)
    assert not local.sshd().is_running()
    assert AuditEvent.objects.filter(action="lease.provision_failed", attempt=attempt).exists()
    assert machine_status(attempt=attempt)["error"] == "Installing the task's software failed."

    settings.BASELINER_PREPARE_HOOKS = []
    retried = start(attempt)  # the Retry button
    assert retried.pk != lease.pk and retried.state == Lease.State.READY and attempt.state == State.RUNNING


def test_a_restarted_server_reattaches_to_the_live_lease(local, attempt):
    lease = start(attempt)
    base.get_provider.cache_clear()  # a new process: nothing in memory
    fresh = LocalProvider()
    assert fresh.attach(lease=Lease.objects.get(pk=lease.pk)) is True
    attempt_request_start(attempt=attempt, user=attempt.expert)  # pressing Start again changes nothing
    assert Lease.objects.filter(attempt=attempt).count() == 1
    assert lease_run(lease=lease, as_admin=False, command="id -un").stdout.strip() == lease.username

    # Even the sshd dying (a reboot of the host) is survived: same port, same pinned host key.
    old_pid = fresh.sshd().pid()
    os.kill(old_pid, 9)
    deadline = time.monotonic() + 10
    while fresh.sshd().is_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not fresh.sshd().is_running()
    assert lease_run(lease=lease, as_admin=False, command="id -un").stdout.strip() == lease.username
    assert fresh.sshd().pid() != old_pid
    assert Lease.objects.filter(attempt=attempt).count() == 1


def test_provisioning_twice_does_nothing_more_and_a_redelivered_task_starts_clean(local, attempt):
    from baseliner.attempts.services import attempt_accept_rules
    from baseliner.machines.services import lease_provision

    attempt_accept_rules(attempt=attempt)
    attempt_request_start(attempt=attempt, user=attempt.expert)
    lease = Lease.objects.get(attempt=attempt)
    # A worker died half-way: the lease is provisioning and its user exists on the machine.
    Lease.objects.filter(pk=lease.pk).update(state=Lease.State.PROVISIONING)
    attempt.state = State.PROVISIONING
    attempt.save(update_fields=["state"])
    lease.refresh_from_db()
    steps = local.provision(lease=lease)
    for _ in range(3):
        next(steps)
    lease.save()
    half_made = lease.username
    assert unix_user_exists(half_made)

    lease_provision(lease_id=lease.pk)  # the redelivered task
    lease.refresh_from_db()
    attempt.refresh_from_db()
    assert (lease.state, attempt.state) == (Lease.State.READY, State.RUNNING)
    assert lease.username != half_made and not unix_user_exists(half_made)

    lease_provision(lease_id=lease.pk)  # delivered once more: nothing changes
    assert Lease.objects.get(pk=lease.pk).username == lease.username
    assert Lease.objects.filter(attempt=attempt).count() == 1
    assert lease_run(lease=lease, as_admin=False, command="id -un").stdout.strip() == lease.username


def test_staff_see_leases_in_the_admin_and_can_tear_one_down(local, attempt, admin_client):
    lease = start(attempt)
    listing = admin_client.get("/admin/machines/lease/").content.decode()
    assert lease.username in listing and "Ready" in listing
    detail = admin_client.get(f"/admin/machines/lease/{lease.pk}/change/").content.decode()
    assert "PRIVATE KEY" not in detail and lease.credentials_encrypted not in detail
    response = admin_client.post("/admin/machines/lease/", {"action": "tear_down", "_selected_action": [lease.pk]}, follow=True)
    assert "1 lease(s) torn down." in response.content.decode()
    lease.refresh_from_db()
    assert lease.state == Lease.State.TORN_DOWN and not unix_user_exists(lease.username)
    event = AuditEvent.objects.get(action="lease.teardown", attempt=attempt)
    assert event.actor.username == "admin" and "in the admin" in event.reason
