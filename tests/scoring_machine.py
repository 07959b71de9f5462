"""
Scoring tests' machines, made the real way: the Start button's services and the ``local``
provider (a loopback sshd, per-lease Unix users, issue 3's preparation) followed by every hook in
settings.BASELINER_PREPARE_HOOKS — the scoring hook included.
"""
from pathlib import Path

import pytest

from baseliner.attempts.states import State
from baseliner.machines.services import lease_run
from provisioning import base
from provisioning.local import LocalProvider
from tests.machines_helpers import start, teardown_all


class Machine:
    def __init__(self, lease):
        self.lease = lease
        st = lease.provider_state
        self.expert, self.scorer = lease.username, st["scorer_user"]
        self.home, self.protected, self.machine_dir = Path(st["home"]), Path(st["protected_dir"]), Path(st["machine_dir"])

    def as_expert(self, command: str, timeout: float = 60):
        """Run ``command`` in the expert's own shell over SSH."""
        return lease_run(lease=self.lease, command=command, as_admin=False, timeout=timeout)


@pytest.fixture
def local_machines(settings, tmp_path):
    settings.MACHINE_PROVIDER = "local"
    settings.LOCAL_SSHD_DIR = tmp_path / "local-sshd"
    base.get_provider.cache_clear()
    yield
    teardown_all()
    LocalProvider().sshd().stop()


@pytest.fixture
def start_machine(local_machines):
    """start_machine(attempt) -> Machine: press Start and provision, as the expert would."""

    def make(attempt, *, worker=None) -> Machine:
        # With a Celery worker running, the Start button's queued provisioning task would race
        # this process (which has the test's settings): stop the worker while provisioning here.
        if worker is not None:
            worker.kill()
        try:
            lease = start(attempt)
        finally:
            if worker is not None:
                worker.start()
        assert attempt.state == State.RUNNING, f"{attempt.last_error} / {lease.error}"
        return Machine(lease)

    return make
