"""Staff annotations on attempts, and export jobs."""
from django.conf import settings
from django.db import models


class Annotation(models.Model):
    """A staff tag on an attempt, or on a moment of it (``elapsed_seconds`` of attempt time),
    with a comment. Removing one only marks it removed, so every edit can be undone and the
    audit log tells the story."""

    class Tag(models.TextChoices):
        RULE_VIOLATION = "rule violation", "Rule violation"
        INFRASTRUCTURE = "infrastructure problem", "Infrastructure problem"
        NOTEWORTHY = "noteworthy", "Noteworthy"

    attempt = models.ForeignKey("attempts.Attempt", on_delete=models.CASCADE, related_name="annotations")
    tag = models.CharField(max_length=100, help_text="A suggested tag or any free tag")
    comment = models.TextField(blank=True, max_length=20000)
    elapsed_seconds = models.FloatField(null=True, blank=True, help_text="Attempt time of the moment; empty for the whole attempt")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["attempt", "created", "pk"]

    def __str__(self) -> str:
        where = f" at {self.elapsed_seconds:.0f}s" if self.elapsed_seconds is not None else ""
        return f"{self.tag}{where} on attempt {self.attempt_id}"


class ExportJob(models.Model):
    """One anonymized export bundle: its filters, progress while it builds, and the result."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    filters = models.JSONField(default=dict, blank=True, help_text="cohort, environment, since, until, include_invalid")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done")
    message = models.CharField(max_length=300, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    path = models.CharField(max_length=500, blank=True, help_text="The bundle (.zip), relative to EXPORTS_DIR")
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"Export {self.pk} ({self.status})"

    @property
    def filters_display(self) -> str:
        """The filters in words, for the exports page ("All valid attempts", "cohort Pilot · since 2026-11-01")."""
        from baseliner.attempts.models import Cohort

        f = self.filters or {}
        parts = []
        if f.get("cohort"):
            cohort = Cohort.objects.filter(pk=f["cohort"]).values_list("name", flat=True).first()
            parts.append(f"cohort {cohort or f['cohort']}")
        if f.get("environment"):
            parts.append(f"environment {f['environment']}")
        if f.get("since"):
            parts.append(f"since {f['since']}")
        if f.get("until"):
            parts.append(f"until {f['until']}")
        if f.get("include_invalid"):
            parts.append("invalid attempts included")
        return " · ".join(parts) if parts else "All valid attempts"
