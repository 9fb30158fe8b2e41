"""The example shop app."""

from django.apps import AppConfig


class ShopConfig(AppConfig):
    """Orders, and the tasks that follow them."""

    name = "shop"
