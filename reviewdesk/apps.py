from __future__ import annotations

from django.apps import AppConfig


class ReviewdeskConfig(AppConfig):
    name = "reviewdesk"
    default_auto_field = "django.db.models.BigAutoField"
