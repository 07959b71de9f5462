"""The Celery app: background work (provisioning, scoring, export) and the clock sweeper (beat)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "baseliner.settings")

app = Celery("baseliner")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
