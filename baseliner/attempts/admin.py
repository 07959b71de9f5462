from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

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
    readonly_fields = ("created_by",)  # whoever saves it (save_model)

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


class ClockActionForm(forms.Form):
    ACTIONS = [("extend", "Extend"), ("pause", "Pause"), ("resume", "Resume"), ("end", "End now"),
               ("end_steps", "Run the end steps again")]
    action = forms.ChoiceField(choices=ACTIONS)
    minutes = forms.FloatField(required=False, min_value=0.1, max_value=24 * 60, help_text="For an extension")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=2000,
                             help_text="Required for extend and end; kept in the audit log")

    def clean(self):
        data = super().clean()
        if data.get("action") == "extend" and not data.get("minutes"):
            self.add_error("minutes", "How many minutes?")
        if data.get("action") in ("extend", "end") and not (data.get("reason") or "").strip():
            self.add_error("reason", "Please give a reason; it is kept in the audit log.")
        return data


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
        "extension_seconds", "ended_at", "warnings_sent", "end_steps_display", "end_steps_finished_at", "archive_links",
        "machine_deadline_at", "final_score", "final_normalized_score", "last_error", "clock_actions",
    )
    exclude = ("end_steps",)

    def has_add_permission(self, request):
        return False  # an attempt comes with its assignment (Assignments → Add)

    # --- clock actions: pause, resume, extend, end (each with a reason, audited) ----------
    def get_urls(self):
        return [
            path("<int:attempt_id>/clock/", self.admin_site.admin_view(self.clock_view), name="attempts_attempt_clock"),
        ] + super().get_urls()

    @admin.display(description="Clock")
    def clock_actions(self, obj):
        if obj.pk is None:
            return "—"
        return format_html('<a class="button" href="{}">Pause, resume, extend or end…</a>',
                           reverse("admin:attempts_attempt_clock", args=[obj.pk]))

    @admin.display(description="End steps")
    def end_steps_display(self, obj):
        from .ending import STEPS

        steps = obj.end_steps or {}
        if not steps:
            return "—"
        rows = format_html_join(
            "", "<tr><td>{}</td><td><strong>{}</strong></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((name, steps.get(name, {}).get("status", "pending"), steps.get(name, {}).get("tries", 0),
              steps.get(name, {}).get("at", ""), steps.get(name, {}).get("error") or steps.get(name, {}).get("detail", ""))
             for name in STEPS),
        )
        return format_html("<table><tr><th>step</th><th>status</th><th>tries</th><th>last try</th><th>detail / error</th></tr>{}</table>", rows)

    @admin.display(description="Final solution archive")
    def archive_links(self, obj):
        from .ending import archive_paths

        if obj.pk is None or archive_paths(obj) is None:
            return "—"
        data = obj.end_steps["archive"].get("data", {})
        return format_html('<a href="{}">{}</a> ({} files, {} bytes, sha256 {}) · <a href="{}">manifest</a>',
                           reverse("attempt-archive", args=[obj.pk]), data.get("archive"), data.get("files"), data.get("size"),
                           (data.get("sha256") or "")[:16], reverse("attempt-archive-manifest", args=[obj.pk]))

    def clock_view(self, request, attempt_id: int):
        from .access import attempt_for_user
        from .ending import attempt_end_steps_restart
        from .lifecycle import attempt_end, attempt_extend, attempt_pause, attempt_resume
        from .services import AttemptActionError
        from .states import EndReason

        if not request.user.has_perm("attempts.change_attempt"):
            raise PermissionDenied
        attempt = attempt_for_user(user=request.user, attempt_id=attempt_id, write=True)
        form = ClockActionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            action, reason = form.cleaned_data["action"], form.cleaned_data["reason"]
            try:
                if action == "pause":
                    attempt_pause(attempt=attempt, actor=request.user, reason=reason)
                elif action == "resume":
                    attempt_resume(attempt=attempt, actor=request.user, reason=reason)
                elif action == "extend":
                    attempt_extend(attempt=attempt, actor=request.user, seconds=(form.cleaned_data["minutes"] or 0) * 60, reason=reason)
                elif action == "end":
                    attempt_end(attempt=attempt, reason=EndReason.STAFF, actor=request.user, detail=reason)
                elif action == "end_steps":
                    attempt_end_steps_restart(attempt=attempt, actor=request.user)
            except AttemptActionError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Done: {dict(ClockActionForm.ACTIONS)[action].lower()}.", messages.SUCCESS)
                attempt.refresh_from_db()
                if action == "extend" and attempt.deadline_at and attempt.machine_deadline_at != attempt.deadline_at:
                    self.message_user(request, "The machine is not answering: its guard still holds the old deadline and is "
                                      "told the new one as soon as it answers (audited).", messages.WARNING)
                return redirect("admin:attempts_attempt_change", attempt.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Clock of attempt {attempt.pk}",
            "attempt": attempt,
            "form": form,
            "time_left": int(clock.time_left(attempt)),
            "deadline": clock.deadline(attempt),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/attempts/attempt_clock.html", context)

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
