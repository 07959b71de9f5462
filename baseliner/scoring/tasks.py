"""Scoring runs in the background. The task takes an id and is safe to run twice."""
from celery import shared_task

from .services import score_run_process, score_runs_sweep


@shared_task(name="baseliner.score_run_execute", ignore_result=True)
def score_run_execute(run_id: int) -> None:
    score_run_process(run_id=run_id)


@shared_task(name="baseliner.score_runs_sweep", ignore_result=True)
def score_runs_sweep_task() -> None:
    """Finish runs a dead worker left "running" (as error entries) and restart waiting ones."""
    score_runs_sweep()
