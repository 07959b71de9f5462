from celery import shared_task


@shared_task(name="baseliner.review.export_run", ignore_result=True)
def export_run(job_id: int) -> None:
    """Build an export bundle. Takes the id; a job that is not queued any more (already
    built, or being built by a redelivery) is refused by ``export_build``."""
    from .bundle import export_build

    export_build(job_id=job_id)
