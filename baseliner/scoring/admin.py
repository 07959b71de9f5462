from django.contrib import admin

from .models import ScoreEntry


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
