from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "baseliner.audit"
    label = "audit"
