from django.contrib import admin, messages
from django.urls import reverse

from .models import Invitation
from .services import invitation_create


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ("email", "cohort", "created", "expires_at", "accepted_at", "user", "revoked")
    list_filter = ("revoked", "cohort")
    search_fields = ("email",)
    fields = ("email", "cohort", "environments", "revoked", "created_by", "expires_at", "accepted_at", "user")
    readonly_fields = ("created_by", "expires_at", "accepted_at", "user")
    filter_horizontal = ("environments",)

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        invitation, token = invitation_create(email=obj.email, created_by=request.user, cohort=obj.cohort)
        obj.pk = invitation.pk
        obj.token_hash, obj.expires_at, obj.created = invitation.token_hash, invitation.expires_at, invitation.created
        link = request.build_absolute_uri(reverse("invitation-accept", args=[token]))
        # The only time the link exists in clear: it is not stored.
        messages.success(request, f"Invitation link for {obj.email} (shown once; copy it now): {link}")

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
