"""WebSocket URLs."""

from __future__ import annotations

from django.urls import path

from reviewdesk import consumers

websocket_urlpatterns = [
    path("ws/queue/", consumers.QueueConsumer.as_asgi()),
    path("ws/queue/<slug:slug>/", consumers.QueueConsumer.as_asgi()),
    path("ws/thread/<uuid:thread_id>/", consumers.ThreadConsumer.as_asgi()),
]
