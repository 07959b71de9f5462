"""What the expert did: terminal recordings, commands, editor saves."""
from django.conf import settings
from django.db import models


class Recording(models.Model):
    """One asciicast v2 file: one terminal (tmux session) for one connection of the bridge.
    Several recordings of a terminal are stitched in time order for playback."""

    attempt = models.ForeignKey("attempts.Attempt", on_delete=models.CASCADE, related_name="recordings")
    terminal = models.CharField(max_length=64, help_text="tmux session name")
    path = models.CharField(max_length=500, help_text="Relative to RECORDINGS_DIR")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    width = models.PositiveIntegerField(default=80)
    height = models.PositiveIntegerField(default=24)
    bytes_out = models.BigIntegerField(default=0)
    bytes_in = models.BigIntegerField(default=0)
    gaps = models.PositiveIntegerField(default=0, help_text="Times the disk refused writes (events wait in memory; "
                                                             "a marker in the file says how long and what was lost)")
    lost_bytes = models.BigIntegerField(default=0, help_text="Bytes of events lost because the disk refused them too long")
    write_error = models.CharField(max_length=200, blank=True,
                                   help_text="While the disk refuses this recording's writes: why (staff are alerted)")
    write_error_since = models.DateTimeField(null=True, blank=True)
    reader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="Who had this terminal open (the expert, or staff watching or taking over)",
    )
    read_only = models.BooleanField(default=False)

    class Meta:
        ordering = ["attempt", "started_at"]


class CommandRecord(models.Model):
    """A command run in the expert's shell, captured by shell integration (OSC 133 markers)."""

    attempt = models.ForeignKey("attempts.Attempt", on_delete=models.CASCADE, related_name="commands")
    terminal = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField()
    elapsed_seconds = models.FloatField(help_text="Attempt time at the start of the command")
    duration_seconds = models.FloatField(null=True, blank=True)
    cwd = models.CharField(max_length=1000, blank=True)
    command = models.TextField()
    exit_status = models.IntegerField(null=True, blank=True)
    source = models.CharField(max_length=20, default="bridge", help_text="bridge (browser terminal) or machine (any shell)")
    marker = models.CharField(
        max_length=100, blank=True,
        help_text="Identifies the command's start marker, so two windows on one terminal log it once",
    )

    class Meta:
        ordering = ["attempt", "started_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["attempt", "marker"], condition=~models.Q(marker=""), name="command_marker_once"),
        ]


class EditorSave(models.Model):
    attempt = models.ForeignKey("attempts.Attempt", on_delete=models.CASCADE, related_name="editor_saves")
    path = models.CharField(max_length=1000, help_text="Relative to the expert's home")
    created = models.DateTimeField()
    elapsed_seconds = models.FloatField()
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ["attempt", "created"]
