from django.apps import AppConfig


class RecordingConfig(AppConfig):
    name = "baseliner.recording"
    label = "recording"
