"""manage.py sync_environments: validate and load every folder under ENVIRONMENTS_DIR."""
from django.core.management.base import BaseCommand, CommandError

from baseliner.catalog.loader import EnvironmentFormatError
from baseliner.catalog.services import environment_sync


class Command(BaseCommand):
    help = "Validate and load every environment folder under ENVIRONMENTS_DIR (a changed folder becomes a new version)."

    def add_arguments(self, parser):
        parser.add_argument("--dir", help="Load from this folder instead of settings.ENVIRONMENTS_DIR")

    def handle(self, *args, **options):
        try:
            results = environment_sync(root=options.get("dir"))
        except EnvironmentFormatError as exc:
            raise CommandError(f"Environment not loaded: {exc}") from None
        for env, created in results:
            what = "loaded new version" if created else "unchanged"
            provisional = " (provisional y_start/y_ref)" if env.scoring.get("provisional") else ""
            self.stdout.write(f"{env.slug} v{env.version}: {what}{provisional}")
