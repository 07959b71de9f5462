from django.contrib import admin

from .models import CommandRecord, EditorSave, Recording


class RecordedAdmin(admin.ModelAdmin):
    """What the expert did is recorded by the app, never typed in or removed by staff (an
    "Add" form of read-only fields could only fail)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Recording)
class RecordingAdmin(RecordedAdmin):
    list_display = ("attempt", "terminal", "started_at", "ended_at", "width", "height", "bytes_out", "bytes_in")
    list_filter = ("attempt__environment__slug",)
    readonly_fields = [f.name for f in Recording._meta.fields]


@admin.register(CommandRecord)
class CommandRecordAdmin(RecordedAdmin):
    list_display = ("attempt", "started_at", "elapsed_seconds", "terminal", "cwd", "command", "exit_status", "duration_seconds")
    list_filter = ("exit_status", "source")
    search_fields = ("command", "cwd")
    readonly_fields = [f.name for f in CommandRecord._meta.fields]


@admin.register(EditorSave)
class EditorSaveAdmin(RecordedAdmin):
    list_display = ("attempt", "path", "created", "elapsed_seconds", "size", "sha256")
    search_fields = ("path",)
    readonly_fields = [f.name for f in EditorSave._meta.fields]
