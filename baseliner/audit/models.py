from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """An append-only record of something a person (or the system) did that matters to a
    baseline's validity: staff actions on attempts, invitations, exports, lease teardown."""

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    action = models.CharField(max_length=100, db_index=True, help_text="e.g. attempt.extend, lease.teardown")
    attempt = models.ForeignKey("attempts.Attempt", on_delete=models.CASCADE, null=True, blank=True, related_name="audit_events")
    target = models.CharField(max_length=200, blank=True, help_text="Other object, as 'model:pk'")
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.action}"
