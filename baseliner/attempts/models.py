"""Cohorts, assignments, attempts and what happens to an attempt's clock."""
from django.conf import settings
from django.db import models

from .states import EndReason, State


class Cohort(models.Model):
    """A group of experts baselined together (e.g. "RE-Bench replication, Nov 2026")."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Assignment(models.Model):
    """An expert is asked to attempt an environment (the slug; the version is fixed at start)."""

    cohort = models.ForeignKey(Cohort, on_delete=models.PROTECT, related_name="assignments", null=True, blank=True)
    expert = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="assignments")
    environment = models.ForeignKey("catalog.Environment", on_delete=models.PROTECT, related_name="assignments")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.expert} → {self.environment.slug}"


class Attempt(models.Model):
    """One expert's timed attempt at one environment version.

    Clock fields are written only by ``baseliner.attempts.clock`` and the services that call
    it; ``deadline_at`` is stored (and indexed) so the sweeper finds overdue attempts with one
    query, and the machine is told the same instant.
    """

    assignment = models.ForeignKey(Assignment, on_delete=models.PROTECT, related_name="attempts")
    expert = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="attempts")
    environment = models.ForeignKey("catalog.Environment", on_delete=models.PROTECT, related_name="attempts")
    state = models.CharField(max_length=20, choices=State.choices, default=State.ASSIGNED, db_index=True)
    end_reason = models.CharField(max_length=20, choices=EndReason.choices, blank=True)
    end_detail = models.TextField(blank=True, help_text="Free text: why it ended (staff reason, failure)")

    created = models.DateTimeField(auto_now_add=True)
    rules_accepted_at = models.DateTimeField(null=True, blank=True)
    provisioning_started_at = models.DateTimeField(null=True, blank=True)
    # --- the clock (see clock.py) ---
    time_limit_seconds = models.PositiveIntegerField(default=8 * 3600)
    started_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True, db_index=True)
    paused_at = models.DateTimeField(null=True, blank=True, help_text="Start of the pause in progress")
    paused_seconds = models.FloatField(default=0, help_text="Total of finished pauses")
    extension_seconds = models.FloatField(default=0, help_text="Total granted by staff")
    scoring_returned_seconds = models.FloatField(
        default=0, help_text="Scoring time given back (environments where scoring does not count against the clock)"
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    warnings_sent = models.JSONField(default=list, blank=True, help_text="Minutes-left warnings already sent")

    last_error = models.TextField(blank=True, help_text="Shown to the expert (e.g. why provisioning failed)")
    end_steps = models.JSONField(default=dict, blank=True, help_text="Status of each end-of-attempt step")
    end_steps_finished_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="When every end step was done, skipped or out of retries"
    )
    machine_deadline_at = models.DateTimeField(
        null=True, blank=True, help_text="The deadline the machine's own guard was last told (see machine_guard.py)"
    )
    final_score = models.ForeignKey(
        "scoring.ScoreEntry", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    final_normalized_score = models.FloatField(null=True, blank=True)
    # Review: an invalid attempt is excluded from analysis and export by default.
    is_invalid = models.BooleanField(default=False)
    invalid_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["state", "deadline_at"], name="attempt_state_deadline")]

    def __str__(self) -> str:
        return f"Attempt {self.pk} ({self.expert}, {self.environment})"


class ClockEvent(models.Model):
    class Kind(models.TextChoices):
        START = "start", "Started"
        PAUSE = "pause", "Paused"
        RESUME = "resume", "Resumed"
        EXTEND = "extend", "Extended"
        WARNING = "warning", "Warning sent"
        SCORING = "scoring", "Scoring time given back"
        END = "end", "Ended"

    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="clock_events")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    at = models.DateTimeField()
    seconds = models.FloatField(null=True, blank=True, help_text="Extension length, minutes-left for a warning, or scoring time given back")
    reason = models.TextField(blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["at", "pk"]


class Note(models.Model):
    """Expert's own notes during an attempt, or staff notes about it."""

    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    text = models.TextField(max_length=20000)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created"]
