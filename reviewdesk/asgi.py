"""ASGI entry point: HTTP through Django, WebSockets through Channels (origin and login checked)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewdesk.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from reviewdesk.middleware import (  # noqa: E402
    DeskAuthMiddlewareStack,
    WebsocketCountMiddleware,
    WebsocketOriginMiddleware,
)
from reviewdesk.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": WebsocketCountMiddleware(
            WebsocketOriginMiddleware(DeskAuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)
