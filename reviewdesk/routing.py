"""WebSocket URLs."""

from __future__ import annotations

from django.urls import path, re_path

from reviewdesk import consumers

websocket_urlpatterns = [
    path("ws/queue/", consumers.QueueConsumer.as_asgi()),
    path("ws/queue/<slug:slug>/", consumers.QueueConsumer.as_asgi()),
    path("ws/thread/<uuid:thread_id>/", consumers.ThreadConsumer.as_asgi()),
    path("ws/ops/", consumers.OpsConsumer.as_asgi()),
    # Last: every other path (/ws/nope/, /ws/thread/not-a-uuid/) is closed, not an error.
    re_path(r"", consumers.NotFoundConsumer.as_asgi()),
]
