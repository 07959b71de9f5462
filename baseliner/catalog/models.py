"""Environments: versioned task definitions loaded from ``environments/``."""
from django.core.exceptions import ValidationError
from django.db import models


class Direction(models.TextChoices):
    HIGHER_IS_BETTER = "higher", "Higher is better"
    LOWER_IS_BETTER = "lower", "Lower is better"


class Aggregation(models.TextChoices):
    BEST = "best", "Best entry counts"
    LAST = "last", "Final submission counts"


class PausePolicy(models.TextChoices):
    NONE = "none", "No pauses"
    ALLOWED = "allowed", "Expert may pause"


class EnvironmentQuerySet(models.QuerySet):
    def latest_versions(self):
        """The newest active version of each slug."""
        newest = Environment.objects.filter(slug=models.OuterRef("slug"), is_active=True).order_by("-version").values("pk")[:1]
        return self.filter(is_active=True, pk=models.Subquery(newest))


class Environment(models.Model):
    """One version of an environment. A changed folder becomes a new row (version + 1);
    attempts keep the row they started on, so a score is always read against the constants
    it was produced under."""

    slug = models.SlugField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    content_hash = models.CharField(max_length=64, help_text="SHA-256 over the environment folder")
    title = models.CharField(max_length=200)
    instructions = models.TextField(help_text="Markdown shown to the expert")
    rules = models.TextField(blank=True, help_text="Markdown: what the expert may and may not do")
    source = models.CharField(max_length=20, default="native", choices=[("native", "baseliner"), ("metr", "METR Task Standard")])
    source_path = models.CharField(max_length=500, blank=True, help_text="Folder under ENVIRONMENTS_DIR")
    metr_task_name = models.CharField(max_length=200, blank=True, help_text="Task name within a METR family")
    time_limit_seconds = models.PositiveIntegerField(default=8 * 3600)
    resources = models.JSONField(default=dict, blank=True, help_text='{"gpus": 1, "cpus": 8, "memory_gb": 64, "disk_gb": 200}')
    scoring = models.JSONField(default=dict, blank=True, help_text="Scoring command, timeout and other scorer settings")
    scoring_timeout_seconds = models.PositiveIntegerField(default=600)
    scoring_counts_against_clock = models.BooleanField(default=True)
    score_visible_to_expert = models.BooleanField(default=True)
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.HIGHER_IS_BETTER)
    aggregation = models.CharField(max_length=10, choices=Aggregation.choices, default=Aggregation.BEST)
    y_start = models.FloatField(help_text="Raw score of the starting solution (normalizes to 0)")
    y_ref = models.FloatField(help_text="Raw score of the hidden reference solution (normalizes to 1)")
    pause_policy = models.CharField(max_length=10, choices=PausePolicy.choices, default=PausePolicy.NONE)
    manifest = models.JSONField(default=dict, blank=True, help_text="The manifest as loaded, for the record")
    is_active = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    objects = EnvironmentQuerySet.as_manager()

    class Meta:
        ordering = ["slug", "-version"]
        constraints = [models.UniqueConstraint(fields=["slug", "version"], name="environment_slug_version_unique")]

    def __str__(self) -> str:
        return f"{self.slug} v{self.version}"

    def clean(self) -> None:
        from baseliner.scoring.normalization import NormalizationError, validate_constants

        try:
            validate_constants(y_start=self.y_start, y_ref=self.y_ref, direction=self.direction)
        except NormalizationError as exc:
            raise ValidationError({"y_ref": str(exc)}) from exc
