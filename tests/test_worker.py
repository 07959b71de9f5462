"""A real Celery worker runs our tasks against the test database and Redis."""
import time

import pytest
from django.core.cache import cache

from baseliner.web.tasks import HEARTBEAT_KEY, last_worker_heartbeat, worker_heartbeat

pytestmark = pytest.mark.slow


def test_worker_runs_a_task_enqueued_by_the_app(worker):
    cache.delete(HEARTBEAT_KEY)
    worker_heartbeat.delay()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and last_worker_heartbeat() is None:
        time.sleep(0.2)
    assert last_worker_heartbeat() is not None
