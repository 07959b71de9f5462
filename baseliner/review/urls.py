from django.urls import path

from . import views

urlpatterns = [
    path("review/", views.monitor, name="review-monitor"),
    path("review/monitor.json", views.monitor_json, name="review-monitor-json"),
    path("review/attempts/<int:attempt_id>/", views.attempt_review, name="review-attempt"),
    path("review/attempts/<int:attempt_id>/cast", views.attempt_cast, name="review-cast"),
    path("review/attempts/<int:attempt_id>/annotations", views.annotation_add, name="review-annotation-add"),
    path("review/annotations/<int:annotation_id>/remove", views.annotation_toggle, {"action": "remove"}, name="review-annotation-remove"),
    path("review/annotations/<int:annotation_id>/restore", views.annotation_toggle, {"action": "restore"}, name="review-annotation-restore"),
    path("review/attempts/<int:attempt_id>/invalidate", views.attempt_validity, {"action": "invalidate"}, name="review-invalidate"),
    path("review/attempts/<int:attempt_id>/revalidate", views.attempt_validity, {"action": "revalidate"}, name="review-revalidate"),
    path("review/analysis/", views.analysis_page, name="review-analysis"),
    path("review/analysis.csv", views.analysis_csv, name="review-analysis-csv"),
    path("review/exports/", views.exports_page, name="review-exports"),
    path("review/exports/<int:job_id>.json", views.export_status, name="review-export-status"),
    path("review/exports/<int:job_id>/download", views.export_download, name="review-export-download"),
]
