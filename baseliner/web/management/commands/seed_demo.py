"""Idempotent demo data: a demo admin, a demo expert, the demo environment and an assignment."""
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from baseliner.attempts.models import Assignment, Cohort
from baseliner.attempts.services import assignment_create
from baseliner.catalog.loader import load_folder
from baseliner.catalog.models import Environment
from baseliner.catalog.services import environment_latest, environment_upsert

DEMO_ADMIN = ("admin", "admin-demo-pass")
DEMO_EXPERT = ("expert", "expert-demo-pass")


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
        """The newest version of environments/demo, loaded through the environment loader
        (``sync_environments`` normally did that already)."""
        existing = environment_latest(slug="demo")
        if existing:
            return existing
        (spec,) = load_folder(Path(settings.ENVIRONMENTS_DIR) / "demo")
        environment, _ = environment_upsert(spec=spec, source_path="demo")
        return environment
