from django.urls import path

from . import views

urlpatterns = [
    path("attempts/<int:attempt_id>/start/", views.attempt_start, name="attempt-start"),
    path("attempts/<int:attempt_id>/machine/", views.attempt_machine_status, name="attempt-machine-status"),
]
