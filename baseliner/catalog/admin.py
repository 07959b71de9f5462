from django.contrib import admin

from .models import Environment


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ("slug", "version", "title", "source", "direction", "aggregation", "y_start", "y_ref", "time_limit_seconds", "is_active", "created")
    list_filter = ("is_active", "source", "direction", "aggregation", "pause_policy")
    search_fields = ("slug", "title")
    readonly_fields = ("content_hash", "created", "manifest")
