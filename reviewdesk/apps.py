from __future__ import annotations

from django.apps import AppConfig


class ReviewdeskConfig(AppConfig):
    name = "reviewdesk"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from reviewdesk import events

        user_logged_out.connect(events.user_logged_out, dispatch_uid="reviewdesk-close-sockets")
