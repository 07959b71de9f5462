from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "baseliner.catalog"
    label = "catalog"
