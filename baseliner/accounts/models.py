"""Invitations: how an expert gets an account."""
from django.conf import settings
from django.db import models


class Invitation(models.Model):
    """A one-time link that lets its holder set a password. Only the SHA-256 of the token is
    stored, so a database leak does not leak usable links."""

    email = models.EmailField()
    token_hash = models.CharField(max_length=64, unique=True)
    cohort = models.ForeignKey("attempts.Cohort", on_delete=models.SET_NULL, null=True, blank=True)
    environments = models.ManyToManyField("catalog.Environment", blank=True, help_text="Assigned on acceptance")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="invitations")
    revoked = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"Invitation for {self.email}"
