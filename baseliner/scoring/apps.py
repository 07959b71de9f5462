from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "baseliner.scoring"
    label = "scoring"
