from django.urls import path

from . import views

urlpatterns = [
    path("attempts/<int:attempt_id>/score/", views.attempt_score, name="attempt-score"),
    path("attempts/<int:attempt_id>/scores/", views.attempt_score_log, name="attempt-score-log"),
    path("api/machine/score", views.machine_score, name="machine-score"),
    path("api/machine/score/<int:run_id>", views.machine_score_run, name="machine-score-run"),
    path("api/machine/score_log", views.machine_score_log, name="machine-score-log"),
]
