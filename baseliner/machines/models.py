"""Machines: hosts the lab owns (``ssh`` provider) and leases of a machine to one attempt."""
from django.conf import settings
from django.db import models

from . import crypto


class Host(models.Model):
    """A GPU host in the lab's own pool, used by the ``ssh`` provider. Each attempt gets one
    GPU on one host; a host with 0 GPUs serves CPU-only environments."""

    name = models.CharField(max_length=100, unique=True)
    address = models.CharField(max_length=255, help_text="Hostname or IP the app connects to")
    port = models.PositiveIntegerField(default=22)
    admin_user = models.CharField(max_length=64, default="root", help_text="A user with root (or sudo) on the host")
    admin_key_encrypted = models.TextField(blank=True, help_text="Private key, encrypted at rest")
    host_key = models.TextField(blank=True, help_text="Pinned host public key ('ssh-ed25519 AAAA...')")
    gpu_count = models.PositiveIntegerField(default=0)
    max_cpu_attempts = models.PositiveIntegerField(default=4, help_text="Attempts without a GPU that may share the host")
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.address}:{self.port}, {self.gpu_count} GPU)"

    def set_admin_key(self, private_key_text: str) -> None:
        self.admin_key_encrypted = crypto.encrypt(private_key_text)

    def admin_key(self) -> str:
        return crypto.decrypt(self.admin_key_encrypted) if self.admin_key_encrypted else ""


class Lease(models.Model):
    """A machine leased to one attempt. ``provider_state`` is the small JSON dict a provider
    needs to re-attach after a restart (JupyterHub's get_state/load_state)."""

    class State(models.TextChoices):
        REQUESTED = "requested", "Requested"
        PROVISIONING = "provisioning", "Provisioning"
        READY = "ready", "Ready"
        UNHEALTHY = "unhealthy", "Unhealthy"
        TEARING_DOWN = "tearing_down", "Tearing down"
        TORN_DOWN = "torn_down", "Torn down"
        FAILED = "failed", "Failed"

    LIVE_STATES = (State.REQUESTED, State.PROVISIONING, State.READY, State.UNHEALTHY, State.TEARING_DOWN)

    attempt = models.ForeignKey("attempts.Attempt", on_delete=models.PROTECT, related_name="leases")
    provider = models.CharField(max_length=50)
    state = models.CharField(max_length=20, choices=State.choices, default=State.REQUESTED, db_index=True)
    host = models.ForeignKey(Host, on_delete=models.PROTECT, null=True, blank=True, related_name="leases")
    gpu_index = models.IntegerField(null=True, blank=True, help_text="GPU on the host reserved for this lease")
    address = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    username = models.CharField(max_length=64, blank=True, help_text="The expert's Unix user on the machine")
    host_key = models.TextField(blank=True, help_text="Pinned host public key, verified on every connection")
    host_key_fingerprint = models.CharField(max_length=100, blank=True)
    credentials_encrypted = models.TextField(blank=True, help_text="Per-lease private keys, encrypted at rest")
    nonce = models.CharField(max_length=64, blank=True, help_text="Per-lease secret for shell-integration markers")
    gpu_info = models.JSONField(default=dict, blank=True)
    provider_state = models.JSONField(default=dict, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    progress_message = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True, help_text="Log message of the last failure (staff only)")
    created = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    last_health_at = models.DateTimeField(null=True, blank=True)
    last_healthy_at = models.DateTimeField(null=True, blank=True)
    health_failures = models.PositiveIntegerField(default=0)
    torn_down_at = models.DateTimeField(null=True, blank=True)
    state_changed_at = models.DateTimeField(null=True, blank=True, help_text="When the lease entered its current state")
    cost_per_hour = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            # Never two live leases on one GPU of one host.
            models.UniqueConstraint(
                fields=["host", "gpu_index"],
                condition=models.Q(state__in=["requested", "provisioning", "ready", "unhealthy", "tearing_down"])
                & models.Q(gpu_index__isnull=False),
                name="lease_one_live_per_gpu",
            )
        ]

    def __str__(self) -> str:
        return f"Lease {self.pk} ({self.provider}, {self.state})"

    def set_credentials(self, data: str) -> None:
        self.credentials_encrypted = crypto.encrypt(data)

    def credentials(self) -> str:
        return crypto.decrypt(self.credentials_encrypted) if self.credentials_encrypted else ""
