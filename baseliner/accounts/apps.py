from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "baseliner.accounts"
    label = "accounts"
