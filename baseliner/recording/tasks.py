"""Celery tasks of the recording app."""
from celery import shared_task

from .services import recording_close_orphans


@shared_task(name="baseliner.recordings_close_orphans", ignore_result=True)
def recordings_close_orphans_task() -> None:
    """Beat, every minute: close the recordings whose web server died under them."""
    recording_close_orphans()
