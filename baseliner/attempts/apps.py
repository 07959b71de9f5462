from django.apps import AppConfig


class AttemptsConfig(AppConfig):
    name = "baseliner.attempts"
    label = "attempts"
