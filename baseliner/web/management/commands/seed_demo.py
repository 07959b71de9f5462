"""Idempotent demo data: a demo admin, a demo expert, the demo environment and an assignment."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from baseliner.attempts.models import Assignment, Cohort
from baseliner.attempts.services import assignment_create
from baseliner.catalog.models import Environment

DEMO_ADMIN = ("admin", "admin-demo-pass")
DEMO_EXPERT = ("expert", "expert-demo-pass")

DEMO_INSTRUCTIONS = """\
# Demo: make `solve.py` faster

This is the demo environment. Edit `solve.py` in your home directory so that it computes the
same result faster, then press **Score** (or run `score` in the terminal). Each scoring run is
a timestamped entry in your score log; the best entry counts.
"""


class Command(BaseCommand):
    help = "Create the demo admin, demo expert, demo environment and an assignment (idempotent)."

    def handle(self, *args, **options):
        User = get_user_model()
        with transaction.atomic():
            admin, created = User.objects.get_or_create(username=DEMO_ADMIN[0], defaults={"email": "admin@example.org", "is_staff": True, "is_superuser": True})
            if created:
                admin.set_password(DEMO_ADMIN[1])
                admin.save(update_fields=["password"])
            expert, created = User.objects.get_or_create(username=DEMO_EXPERT[0], defaults={"email": "expert@example.org"})
            if created:
                expert.set_password(DEMO_EXPERT[1])
                expert.save(update_fields=["password"])
            environment = self._demo_environment()
            cohort, _ = Cohort.objects.get_or_create(name="Demo cohort", defaults={"description": "Created by seed_demo"})
            if not Assignment.objects.filter(expert=expert, environment__slug=environment.slug).exists():
                assignment_create(expert=expert, environment=environment, cohort=cohort, created_by=admin)
        self.stdout.write(self.style.SUCCESS(
            f"Demo admin:  {DEMO_ADMIN[0]} / {DEMO_ADMIN[1]}\nDemo expert: {DEMO_EXPERT[0]} / {DEMO_EXPERT[1]}"
        ))

    def _demo_environment(self) -> Environment:
        """The demo environment from environments/, loaded by sync_environments when that
        command exists; otherwise a minimal built-in definition."""
        existing = Environment.objects.filter(slug="demo").order_by("-version").first()
        if existing:
            return existing
        return Environment.objects.create(
            slug="demo", version=1, content_hash="builtin", title="Demo: make solve.py faster",
            instructions=DEMO_INSTRUCTIONS, time_limit_seconds=8 * 3600, resources={"gpus": 0, "cpus": 1},
            direction="lower", aggregation="best", y_start=1.0, y_ref=0.1,
        )
