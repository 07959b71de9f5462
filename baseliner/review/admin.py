from django.contrib import admin

from .models import Annotation, ExportJob


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ("attempt", "tag", "elapsed_seconds", "author", "created", "removed_at")
    list_filter = ("tag",)
    search_fields = ("tag", "comment")
    readonly_fields = [f.name for f in Annotation._meta.fields]

    def has_add_permission(self, request):
        return False  # through the review page, so every edit is audited

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = ("pk", "created", "created_by", "status", "progress", "size")
    list_filter = ("status",)
    readonly_fields = [f.name for f in ExportJob._meta.fields]

    def has_add_permission(self, request):
        return False  # through the export page or manage.py export_baselines

    def has_change_permission(self, request, obj=None):
        return False
