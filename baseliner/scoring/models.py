"""The score log: one entry per scoring run, append-only and hash-chained."""
from django.conf import settings
from django.db import models


class ScoreEntry(models.Model):
    class Status(models.TextChoices):
        OK = "ok", "OK"
        INVALID = "invalid", "Invalid solution"
        ERROR = "error", "Scoring error"

    class Trigger(models.TextChoices):
        BUTTON = "button", "Score button"
        COMMAND = "command", "score command on the machine"
        FINAL = "final", "Final scoring at the end"
        STAFF = "staff", "Staff"

    attempt = models.ForeignKey("attempts.Attempt", on_delete=models.PROTECT, related_name="score_entries")
    sequence = models.PositiveIntegerField(help_text="1, 2, 3... within the attempt")
    created = models.DateTimeField(help_text="When the scoring run finished")
    requested_at = models.DateTimeField(null=True, blank=True)
    elapsed_seconds = models.FloatField(help_text="Attempt time used when the run was requested")
    raw_score = models.FloatField(null=True, blank=True)
    normalized_score = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    message = models.TextField(blank=True, help_text="Shown to the expert")
    details = models.JSONField(default=dict, blank=True, help_text="Hidden from the expert")
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    triggered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    scoring_seconds = models.FloatField(null=True, blank=True, help_text="How long the scorer ran")
    # Tamper evidence: entry_hash = sha256(prev_hash + canonical JSON of this entry's fields).
    prev_hash = models.CharField(max_length=64, blank=True)
    entry_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["attempt", "sequence"]
        constraints = [models.UniqueConstraint(fields=["attempt", "sequence"], name="score_entry_sequence_unique")]
        verbose_name_plural = "score entries"

    def __str__(self) -> str:
        return f"Score #{self.sequence} of attempt {self.attempt_id}: {self.status} {self.raw_score}"


class ScoreRun(models.Model):
    """A request to score, from the button or the machine's ``score`` command. Runs of one
    attempt execute one at a time, in order; each finished run produced exactly one entry."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting"
        RUNNING = "running", "Scoring"
        DONE = "done", "Done"

    attempt = models.ForeignKey("attempts.Attempt", on_delete=models.CASCADE, related_name="score_runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    trigger = models.CharField(max_length=10, choices=ScoreEntry.Trigger.choices)
    triggered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    requested_at = models.DateTimeField()
    elapsed_seconds = models.FloatField(help_text="Attempt time used when requested")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    entry = models.OneToOneField(ScoreEntry, on_delete=models.SET_NULL, null=True, blank=True, related_name="run")

    class Meta:
        ordering = ["requested_at", "pk"]

    def __str__(self) -> str:
        return f"Score run {self.pk} of attempt {self.attempt_id} ({self.status})"


class MachineToken(models.Model):
    """The bearer token the machine's ``score`` command presents. Only its SHA-256 is stored;
    it authorizes scoring (and reading the score log of) one attempt while its lease lives."""

    attempt = models.ForeignKey("attempts.Attempt", on_delete=models.CASCADE, related_name="machine_tokens")
    lease = models.ForeignKey("machines.Lease", on_delete=models.CASCADE, related_name="machine_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Machine token of lease {self.lease_id}"
