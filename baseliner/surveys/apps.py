from django.apps import AppConfig


class SurveysConfig(AppConfig):
    name = "baseliner.surveys"
    label = "surveys"
