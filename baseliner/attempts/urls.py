from django.urls import path

from . import views

urlpatterns = [
    path("attempts/<int:attempt_id>/clock/", views.attempt_clock, name="attempt-clock"),
    path("attempts/<int:attempt_id>/end/", views.attempt_end_view, name="attempt-end"),
    path("attempts/<int:attempt_id>/pause/", views.attempt_pause_view, name="attempt-pause"),
    path("attempts/<int:attempt_id>/resume/", views.attempt_resume_view, name="attempt-resume"),
    path("api/attempts/<int:attempt_id>/notes/", views.attempt_notes, name="attempt-notes"),
    path("attempts/<int:attempt_id>/archive.tar.gz", views.attempt_archive, name="attempt-archive"),
    path("attempts/<int:attempt_id>/archive-manifest.json", views.attempt_archive, {"part": "manifest"}, name="attempt-archive-manifest"),
]
