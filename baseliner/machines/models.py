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
    estimated_cost = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True,
                                         help_text="Price per hour x hours the machine ran (cloud providers)")

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


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


class LaunchProfile(models.Model):
    """How the ``ec2`` provider rents an expert's VM: one instance per attempt, launched from
    this profile and terminated when the attempt ends. AWS credentials are never stored here:
    they come from the standard AWS chain (environment, profile, instance role)."""

    name = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True, help_text="The ec2 provider uses the first enabled profile by name")
    region = models.CharField(max_length=30, help_text="AWS region, e.g. us-east-1")
    instance_type = models.CharField(max_length=40, default="p5.4xlarge", help_text="p5.4xlarge is one H100 (80 GB)")
    ami_id = models.CharField(max_length=40, help_text="An AMI with NVIDIA drivers and cloud-init, e.g. a Deep Learning Base GPU AMI (Ubuntu)")
    subnet_ids = models.CharField(
        max_length=500, blank=True,
        help_text="Comma-separated subnet ids, one per availability zone, tried in order: when a zone has no "
                  "capacity the next one is tried")
    availability_zones = models.CharField(
        max_length=500, blank=True, help_text="Without subnets: zones of the default VPC, tried in order (e.g. us-east-1a, us-east-1b)")
    security_group_ids = models.CharField(max_length=500, blank=True, help_text="Existing security groups to attach, comma-separated")
    ssh_ingress_cidr = models.CharField(
        max_length=50, blank=True,
        help_text="If set, each instance gets its own security group admitting SSH (22/tcp) only from this range "
                  "(the app's address, e.g. 203.0.113.7/32); it is deleted with the instance")
    disk_gb = models.PositiveIntegerField(default=500, help_text="Root volume size in GiB (gp3, deleted with the instance)")
    root_device_name = models.CharField(max_length=40, default="/dev/sda1", help_text="The AMI's root device")
    use_public_ip = models.BooleanField(default=True, help_text="Connect to the public IP (else the private one, from inside the VPC)")
    tags = models.JSONField(default=dict, blank=True, help_text='Extra tags on every instance, e.g. {"team": "evals"}')
    price_per_hour = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True,
                                         help_text="USD per instance hour, for cost estimates on each lease")
    boot_timeout_minutes = models.PositiveIntegerField(default=20, help_text="How long to wait for the instance, its host key and SSH")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.instance_type} in {self.region})"

    def clean(self) -> None:
        import ipaddress

        from django.core.exceptions import ValidationError

        errors = {}
        if self.subnets() and self.zones():
            errors["availability_zones"] = "Give subnets or zones, not both: a subnet already names its zone."
        if self.ssh_ingress_cidr:
            try:
                ipaddress.ip_network(self.ssh_ingress_cidr)
            except ValueError:
                errors["ssh_ingress_cidr"] = "Not an address range; write e.g. 203.0.113.7/32."
        if not isinstance(self.tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in self.tags.items()):
            errors["tags"] = 'Tags are a JSON object of strings, e.g. {"team": "evals"}.'
        elif any(k.lower().startswith(("aws:", "baseliner:")) for k in self.tags):
            errors["tags"] = "Tag names starting with aws: or baseliner: are reserved."
        if errors:
            raise ValidationError(errors)

    def subnets(self) -> list[str]:
        return _csv(self.subnet_ids)

    def zones(self) -> list[str]:
        return _csv(self.availability_zones)

    def security_groups(self) -> list[str]:
        return _csv(self.security_group_ids)
