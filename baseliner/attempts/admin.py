from django.contrib import admin

from baseliner.attempts import clock

from .models import Assignment, Attempt, ClockEvent, Cohort, Note


@admin.register(Cohort)
class CohortAdmin(admin.ModelAdmin):
    list_display = ("name", "created")
    search_fields = ("name",)


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("expert", "environment", "cohort", "created", "created_by")
    list_filter = ("cohort", "environment__slug")
    search_fields = ("expert__username", "expert__email")
    autocomplete_fields = ("expert",)

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        # New assignments go through the service so the attempt is created with them.
        from .services import assignment_create

        created = assignment_create(expert=obj.expert, environment=obj.environment, cohort=obj.cohort, created_by=request.user)
        obj.pk = created.pk


class ClockEventInline(admin.TabularInline):
    model = ClockEvent
    extra = 0
    can_delete = False
    readonly_fields = ("kind", "at", "seconds", "reason", "actor")

    def has_add_permission(self, request, obj=None):
        return False


class NoteInline(admin.TabularInline):
    model = Note
    extra = 0
    readonly_fields = ("author", "created")


@admin.register(Attempt)
class AttemptAdmin(admin.ModelAdmin):
    list_display = ("id", "expert", "environment", "state", "end_reason", "started_at", "time_left_display", "final_normalized_score", "is_invalid")
    list_filter = ("state", "end_reason", "is_invalid", "environment__slug", "assignment__cohort")
    search_fields = ("expert__username", "expert__email", "environment__slug")
    date_hierarchy = "created"
    inlines = [ClockEventInline, NoteInline]
    # State and clock fields change only through services (pause, extend, end...): read-only here.
    readonly_fields = (
        "assignment", "expert", "environment", "state", "end_reason", "end_detail", "created", "rules_accepted_at",
        "provisioning_started_at", "time_limit_seconds", "started_at", "deadline_at", "paused_at", "paused_seconds",
        "extension_seconds", "ended_at", "warnings_sent", "end_steps", "final_score", "final_normalized_score", "last_error",
    )

    @admin.display(description="Time left")
    def time_left_display(self, obj):
        if obj.started_at is None:
            return "—"
        left = int(clock.time_left(obj))
        return f"{left // 3600}:{left % 3600 // 60:02d}:{left % 60:02d}"


@admin.register(ClockEvent)
class ClockEventAdmin(admin.ModelAdmin):
    list_display = ("attempt", "kind", "at", "seconds", "reason", "actor")
    list_filter = ("kind",)
    readonly_fields = [f.name for f in ClockEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ("attempt", "author", "created", "text")
    search_fields = ("text",)
