from django.contrib import admin

from .models import Survey, SurveyResponse


@admin.register(Survey)
class SurveyAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "title", "is_active", "created")
    list_filter = ("is_active", "name")


@admin.register(SurveyResponse)
class SurveyResponseAdmin(admin.ModelAdmin):
    list_display = ("attempt", "survey", "respondent", "submitted_at")
    list_filter = ("survey",)
    readonly_fields = ("attempt", "survey", "respondent", "answers", "submitted_at", "updated")
