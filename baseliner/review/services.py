"""
Writes of the review app: annotations, invalidation, export jobs. Every staff edit is
audited in the same transaction and can be undone (removing an annotation only marks it;
an invalid attempt can be re-validated).
"""
from django.db import transaction

from baseliner.attempts import clock
from baseliner.attempts.models import Attempt
from baseliner.audit.services import audit_record

from .models import Annotation, ExportJob


class ReviewActionError(Exception):
    """A refused review action; ``str()`` is shown to the staff member."""


MAX_TAG_LENGTH = 100


def annotation_create(*, attempt: Attempt, author, tag: str, comment: str = "", elapsed_seconds: float | None = None) -> Annotation:
    tag = (tag or "").strip()
    if not tag:
        raise ReviewActionError("A tag is required (e.g. “rule violation”).")
    if len(tag) > MAX_TAG_LENGTH:
        raise ReviewActionError(f"A tag is at most {MAX_TAG_LENGTH} characters.")
    if elapsed_seconds is not None and elapsed_seconds < 0:
        raise ReviewActionError("The moment must be a non-negative number of seconds of attempt time.")
    with transaction.atomic():
        annotation = Annotation.objects.create(
            attempt=attempt, author=author, tag=tag, comment=comment or "", elapsed_seconds=elapsed_seconds
        )
        audit_record(action="annotation.create", actor=author, attempt=attempt, target=f"annotation:{annotation.pk}",
                     data={"tag": tag, "comment": comment or "", "elapsed_seconds": elapsed_seconds})
    return annotation


def annotation_remove(*, annotation: Annotation, actor) -> Annotation:
    """Mark removed (kept for the record; ``annotation_restore`` undoes it). Idempotent."""
    with transaction.atomic():
        annotation = Annotation.objects.select_for_update().get(pk=annotation.pk)
        if annotation.removed_at is None:
            annotation.removed_at = clock.now()
            annotation.removed_by = actor
            annotation.save(update_fields=["removed_at", "removed_by"])
            audit_record(action="annotation.remove", actor=actor, attempt=annotation.attempt, target=f"annotation:{annotation.pk}",
                         data={"tag": annotation.tag})
    return annotation


def annotation_restore(*, annotation: Annotation, actor) -> Annotation:
    with transaction.atomic():
        annotation = Annotation.objects.select_for_update().get(pk=annotation.pk)
        if annotation.removed_at is not None:
            annotation.removed_at = None
            annotation.removed_by = None
            annotation.save(update_fields=["removed_at", "removed_by"])
            audit_record(action="annotation.restore", actor=actor, attempt=annotation.attempt, target=f"annotation:{annotation.pk}",
                         data={"tag": annotation.tag})
    return annotation


def attempt_invalidate(*, attempt: Attempt, actor, reason: str) -> Attempt:
    """Mark an attempt invalid: analysis and export leave it out by default."""
    reason = (reason or "").strip()
    if not reason:
        raise ReviewActionError("Say why the attempt is invalid: the reason is kept with it.")
    with transaction.atomic():
        attempt = Attempt.objects.select_for_update().get(pk=attempt.pk)
        previous = {"is_invalid": attempt.is_invalid, "invalid_reason": attempt.invalid_reason}
        attempt.is_invalid = True
        attempt.invalid_reason = reason
        attempt.save(update_fields=["is_invalid", "invalid_reason"])
        audit_record(action="attempt.invalidate", actor=actor, attempt=attempt, reason=reason, data={"previous": previous})
    return attempt


def attempt_revalidate(*, attempt: Attempt, actor, reason: str = "") -> Attempt:
    """Undo ``attempt_invalidate``: the attempt counts again."""
    with transaction.atomic():
        attempt = Attempt.objects.select_for_update().get(pk=attempt.pk)
        if not attempt.is_invalid:
            return attempt
        previous = {"is_invalid": True, "invalid_reason": attempt.invalid_reason}
        attempt.is_invalid = False
        attempt.invalid_reason = ""
        attempt.save(update_fields=["is_invalid", "invalid_reason"])
        audit_record(action="attempt.revalidate", actor=actor, attempt=attempt, reason=reason, data={"previous": previous})
    return attempt


def export_request(*, actor, filters: dict, run_now: bool = False) -> ExportJob:
    """Create an export job and queue it (Celery, after commit); ``run_now`` builds it in
    this process instead (the management command)."""
    from .bundle import ExportFilterError, clean_filters

    try:
        filters = clean_filters(filters)
    except ExportFilterError as exc:
        raise ReviewActionError(str(exc)) from exc
    with transaction.atomic():
        job = ExportJob.objects.create(created_by=actor if actor is not None and actor.is_authenticated else None, filters=filters)
        audit_record(action="export.request", actor=actor, target=f"exportjob:{job.pk}", data={"filters": filters})
        if not run_now:
            from .tasks import export_run

            transaction.on_commit(lambda: export_run.delay(job.pk))
    if run_now:
        from .bundle import export_build

        export_build(job_id=job.pk)
        job.refresh_from_db()
    return job
