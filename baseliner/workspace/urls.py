from django.urls import path

from . import views

urlpatterns = [
    path("api/attempts/<int:attempt_id>/files/", views.file_list, name="workspace-files"),
    path("api/attempts/<int:attempt_id>/files/content", views.file_content, name="workspace-file-content"),
    path("api/attempts/<int:attempt_id>/files/create", views.file_create, name="workspace-file-create"),
    path("api/attempts/<int:attempt_id>/files/rename", views.file_rename, name="workspace-file-rename"),
    path("api/attempts/<int:attempt_id>/files/delete", views.file_delete, name="workspace-file-delete"),
    path("api/attempts/<int:attempt_id>/terminals/", views.terminal_list, name="workspace-terminals"),
    path("api/attempts/<int:attempt_id>/terminals/rename", views.terminal_rename, name="workspace-terminal-rename"),
    path("api/attempts/<int:attempt_id>/terminals/close", views.terminal_close, name="workspace-terminal-close"),
]
