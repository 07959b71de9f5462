from django import forms
from django.contrib import admin, messages

from .models import Host, LaunchProfile, Lease


class HostForm(forms.ModelForm):
    admin_private_key = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), required=False,
        help_text="Paste to set or replace; stored encrypted and never shown again.",
    )

    class Meta:
        model = Host
        exclude = ("admin_key_encrypted",)

    def save(self, commit=True):
        host = super().save(commit=False)
        if self.cleaned_data.get("admin_private_key"):
            host.set_admin_key(self.cleaned_data["admin_private_key"])
        if commit:
            host.save()
        return host


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    form = HostForm
    list_display = ("name", "address", "port", "gpu_count", "enabled", "created")
    list_filter = ("enabled",)
    search_fields = ("name", "address")


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ("id", "attempt", "provider", "state", "host", "gpu_index", "address", "username", "last_healthy_at", "health_failures", "error_summary", "estimated_cost", "created")
    actions = ["tear_down"]
    list_filter = ("state", "provider", "host")
    search_fields = ("attempt__expert__username", "address", "username")
    exclude = ("credentials_encrypted", "nonce")
    readonly_fields = ("attempt", "provider", "state", "host", "gpu_index", "address", "port", "username", "host_key",
                       "host_key_fingerprint", "gpu_info", "provider_state", "progress", "progress_message", "error",
                       "created", "ready_at", "last_health_at", "last_healthy_at", "health_failures", "torn_down_at", "cost_per_hour", "estimated_cost")

    @admin.display(description="Last error")
    def error_summary(self, obj):
        return (obj.error[:80] + "…") if len(obj.error) > 80 else obj.error

    @admin.action(description="Tear down the selected leases (kills the expert's processes, frees the GPU)", permissions=["change"])
    def tear_down(self, request, queryset):
        from .services import lease_teardown

        done = 0
        for lease in queryset.filter(state__in=Lease.LIVE_STATES):
            lease = lease_teardown(lease=lease, reason=f"torn down by {request.user.get_username()} in the admin", actor=request.user)
            done += lease.state == Lease.State.TORN_DOWN
        self.message_user(request, f"{done} lease(s) torn down.", messages.SUCCESS if done else messages.WARNING)

    def has_add_permission(self, request):
        # Leases are made by providers when an attempt starts; an empty "Add" form could only fail.
        return False


@admin.register(LaunchProfile)
class LaunchProfileAdmin(admin.ModelAdmin):
    list_display = ("name", "enabled", "region", "instance_type", "ami_id", "price_per_hour")
    list_filter = ("enabled", "region")
    search_fields = ("name", "ami_id")
    fieldsets = (
        (None, {"fields": ("name", "enabled", "region", "instance_type", "ami_id", "disk_gb", "root_device_name")}),
        ("Network", {"fields": ("subnet_ids", "availability_zones", "security_group_ids", "ssh_ingress_cidr", "use_public_ip")}),
        ("Cost and tags", {"fields": ("price_per_hour", "tags", "boot_timeout_minutes")}),
    )
