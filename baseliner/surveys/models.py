"""Versioned end-of-attempt surveys and the expert's answers."""
from django.conf import settings
from django.db import models


class Survey(models.Model):
    """A survey version. ``questions`` is a list of
    ``{"id", "text", "type": likert|choice|number|text, "choices": [...], "required": bool, "help"}``.
    Editing a survey that has answers creates a new version; answers keep theirs."""

    name = models.SlugField(max_length=100, default="default")
    version = models.PositiveIntegerField(default=1)
    title = models.CharField(max_length=200)
    questions = models.JSONField(default=list)
    is_active = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="survey_name_version_unique")]

    def __str__(self) -> str:
        return f"{self.title} (v{self.version})"


class SurveyResponse(models.Model):
    attempt = models.OneToOneField("attempts.Attempt", on_delete=models.PROTECT, related_name="survey_response")
    survey = models.ForeignKey(Survey, on_delete=models.PROTECT, related_name="responses")
    respondent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    answers = models.JSONField(default=dict)
    submitted_at = models.DateTimeField(null=True, blank=True, help_text="Null while a draft")
    updated = models.DateTimeField(auto_now=True)
