"""Scoring runs in the background. The task takes an id and is safe to run twice."""
from celery import shared_task

from .services import score_run_process


@shared_task(name="baseliner.score_run_execute", ignore_result=True)
def score_run_execute(run_id: int) -> None:
    score_run_process(run_id=run_id)
