"""manage.py export_baselines: build an anonymized bundle (the same as the Export page)."""
from django.core.management.base import BaseCommand, CommandError

from baseliner.review.bundle import export_file
from baseliner.review.models import ExportJob
from baseliner.review.services import ReviewActionError, export_request


class Command(BaseCommand):
    help = "Build an anonymized, versioned export bundle of baseline attempts and print its path."

    def add_arguments(self, parser):
        parser.add_argument("--cohort", help="Cohort id or name")
        parser.add_argument("--environment", help="Environment slug")
        parser.add_argument("--since", help="Attempts started on or after this date (YYYY-MM-DD)")
        parser.add_argument("--until", help="Attempts started on or before this date (YYYY-MM-DD)")
        parser.add_argument("--include-invalid", action="store_true", help="Include attempts marked invalid")
        parser.add_argument("--queue", action="store_true", help="Queue it as a Celery job instead of building it here")

    def handle(self, *args, **o):
        filters = {"cohort": o["cohort"], "environment": o["environment"], "since": o["since"], "until": o["until"],
                   "include_invalid": o["include_invalid"]}
        try:
            job = export_request(actor=None, filters=filters, run_now=not o["queue"])
        except ReviewActionError as exc:
            raise CommandError(str(exc)) from exc
        if o["queue"]:
            self.stdout.write(f"Export {job.pk} queued; follow it on the Export page.")
            return
        if job.status != ExportJob.Status.DONE:
            raise CommandError(f"Export {job.pk} failed: {job.error}")
        self.stdout.write(self.style.SUCCESS(f"Export {job.pk}: {export_file(job)} ({job.size} bytes, sha256 {job.sha256})"))
        for table, n in job.counts.items():
            self.stdout.write(f"  {table}: {n} rows")
