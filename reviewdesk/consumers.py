"""WebSocket consumers: authenticate, check permission, join groups, relay pushed HTML.

Nothing is ever accepted from the socket: decisions go through CSRF-protected POSTs.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from reviewdesk import events, queries
from reviewdesk.models import Thread

# Application close codes (4000-4999): the page reloads, which sends a person to the login.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class DeskConsumer(AsyncWebsocketConsumer):
    """Base: subclasses say which groups a user may join; None means refuse."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        groups = await database_sync_to_async(self.groups_for)(user)
        if groups is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        # Join before accepting: the page resyncs on open, so no push can fall in between.
        self.joined = [*groups, events.user_group(user.pk)]
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Ignore anything a client sends."""

    async def desk_html(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["html"])

    async def desk_close(self, event: dict[str, Any]) -> None:
        """The user logged out elsewhere: the page reloads into the login."""
        await self.close(code=CLOSE_UNAUTHENTICATED)

    def groups_for(self, user: Any) -> list[str] | None:
        raise NotImplementedError


class QueueConsumer(DeskConsumer):
    """Live queue: every queue the user reviews, or the one named in the URL."""

    def groups_for(self, user: Any) -> list[str] | None:
        queues = queries.queues_for_user(user)
        slug = self.scope["url_route"]["kwargs"].get("slug")
        if slug:
            queues = queues.filter(slug=slug)
            if not queues.exists():
                return None
        return [events.queue_group(pk) for pk in queues.values_list("pk", flat=True)]


class ThreadConsumer(DeskConsumer):
    """Live thread progress, for people allowed to see the thread."""

    def groups_for(self, user: Any) -> list[str] | None:
        thread = Thread.objects.filter(pk=self.scope["url_route"]["kwargs"]["thread_id"]).first()
        if thread is None or not queries.thread_can_view(user, thread):
            return None
        return [events.thread_group(thread.pk)]
