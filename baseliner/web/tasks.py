"""Worker liveness: beat runs this every 30 s; staff pages show when a worker last answered."""
from celery import shared_task
from django.core.cache import cache

from baseliner.attempts import clock

HEARTBEAT_KEY = "baseliner:worker-heartbeat"


@shared_task(name="baseliner.worker_heartbeat", ignore_result=True)
def worker_heartbeat() -> None:
    cache.set(HEARTBEAT_KEY, clock.now().isoformat(), timeout=300)


def last_worker_heartbeat() -> str | None:
    return cache.get(HEARTBEAT_KEY)
