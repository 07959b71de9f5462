from django.contrib import admin

from .models import MachineToken, ScoreEntry, ScoreRun


@admin.register(ScoreEntry)
class ScoreEntryAdmin(admin.ModelAdmin):
    list_display = ("attempt", "sequence", "created", "elapsed_seconds", "raw_score", "normalized_score", "status", "trigger")
    list_filter = ("status", "trigger", "attempt__environment__slug")
    search_fields = ("attempt__expert__username", "message")
    readonly_fields = [f.name for f in ScoreEntry._meta.fields]

    # The score log is append-only: no edits or deletions, even by staff.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ScoreRun)
class ScoreRunAdmin(admin.ModelAdmin):
    list_display = ("attempt", "status", "trigger", "requested_at", "started_at", "finished_at", "entry")
    list_filter = ("status", "trigger")
    readonly_fields = [f.name for f in ScoreRun._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(MachineToken)
class MachineTokenAdmin(admin.ModelAdmin):
    list_display = ("attempt", "lease", "created", "revoked_at")
    readonly_fields = ("attempt", "lease", "token_hash", "created", "revoked_at")

    def has_add_permission(self, request):
        return False
