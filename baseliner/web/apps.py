from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "baseliner.web"
    label = "web"
