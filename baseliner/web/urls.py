from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("attempts/<int:attempt_id>/", views.attempt_detail, name="attempt-detail"),
    path("favicon.ico", views.favicon),
    path("healthz", views.healthz, name="healthz"),
]
