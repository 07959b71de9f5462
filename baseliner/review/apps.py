from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "baseliner.review"
    label = "review"
    verbose_name = "Review, analysis and export"
