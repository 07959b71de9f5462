"""Celery tasks of the attempt's life. Each takes ids, re-fetches, calls a service, and is
safe to run twice."""
from celery import shared_task

from .ending import attempt_end_steps_run
from .lifecycle import attempts_sweep


@shared_task(name="baseliner.attempts_sweep", ignore_result=True)
def attempts_sweep_task() -> None:
    """Beat, every CLOCK_SWEEP_SECONDS: overdue attempts end, warnings go out, machines'
    deadlines are kept in sync, unfinished end steps run again."""
    attempts_sweep()


@shared_task(name="baseliner.attempt_end_steps", ignore_result=True)
def attempt_end_steps_task(attempt_id: int) -> None:
    attempt_end_steps_run(attempt_id=attempt_id)
