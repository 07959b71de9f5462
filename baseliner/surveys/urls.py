from django.urls import path

from . import views

urlpatterns = [
    path("attempts/<int:attempt_id>/survey/", views.attempt_survey, name="attempt-survey"),
]
