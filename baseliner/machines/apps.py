from django.apps import AppConfig


class MachinesConfig(AppConfig):
    name = "baseliner.machines"
    label = "machines"
