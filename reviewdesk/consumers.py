"""WebSocket consumers: authenticate, check permission, join groups, relay pushes.

Nothing is ever accepted from the socket: decisions go through CSRF-protected POSTs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
import weakref
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer

from reviewdesk import events
from reviewdesk.middleware import on_any_thread
from reviewdesk.models import Thread
from reviewdesk.queries import inbox, threads

log = logging.getLogger(__name__)

# Application close codes (4000-4999): the page reloads, which sends a person to the login.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
# "Service restart": the page reconnects by itself and fetches what it may have missed.
CLOSE_RESYNC = 1012
# Channel names of the per-process queue hubs (settings give them a larger capacity).
HUB_PREFIX = "deskhub"


class QueueHub:
    """One subscription per process for each queue group, relayed to this process's sockets.

    channels-redis copies a group message into Redis once per member and each member's consumer
    then pops and handles its copy: with 500 pages on a queue, one new row was 500 Redis
    entries and 500 dispatches, and the last page saw it seconds late. Here the process joins
    each queue group once, receives each row once, and writes it to its sockets in memory.
    If the subscription breaks (Redis restarted and forgot every group), the sockets are closed
    with a retryable code: the pages reconnect, which re-subscribes, and resync.
    """

    # Re-add memberships well inside channels-redis's group expiry (a day).
    REFRESH_SECONDS = 3600.0

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.sockets: dict[str, set[QueueConsumer]] = {}
        self.lock = asyncio.Lock()
        self.tasks: list[asyncio.Task[None]] = []

    async def join(self, group: str, consumer: QueueConsumer) -> None:
        async with self.lock:
            if self.channel is None:
                # A plain channel (no "!"): channels-redis serialises every receive on its
                # process-local ("!") channels behind one lock, where the hub would wait
                # behind each socket's own idle receive.
                self.channel = f"{HUB_PREFIX}.{uuid.uuid4().hex}"
                self.tasks = [
                    asyncio.ensure_future(self._relay()),
                    asyncio.ensure_future(self._refresh()),
                ]
            if group not in self.sockets:
                await self.layer.group_add(group, self.channel)
                self.sockets[group] = set()
            self.sockets[group].add(consumer)

    async def leave(self, group: str, consumer: QueueConsumer) -> None:
        async with self.lock:
            members = self.sockets.get(group)
            if members is None:
                return
            members.discard(consumer)
            if not members and self.channel is not None:
                del self.sockets[group]
                with contextlib.suppress(Exception):  # Redis down: the membership expires
                    await self.layer.group_discard(group, self.channel)

    async def _relay(self) -> None:
        assert self.channel is not None
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("queue hub lost its subscription; pages will reconnect", exc_info=True)
                await self._reset()
                return
            html = message.get("html")
            for consumer in list(self.sockets.get(message.get("group", ""), ())):
                with contextlib.suppress(Exception):  # a page that is leaving
                    await consumer.send(text_data=html)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.REFRESH_SECONDS)
            async with self.lock:
                for group in list(self.sockets):
                    with contextlib.suppress(Exception):
                        await self.layer.group_add(group, self.channel)

    async def _reset(self) -> None:
        """Forget every subscription and send every page back to reconnect."""
        async with self.lock:
            members = {consumer for group in self.sockets.values() for consumer in group}
            self.sockets.clear()
            self.channel = None
            current = asyncio.current_task()
            for task in self.tasks:
                if task is not current:
                    task.cancel()
            self.tasks = []
        for consumer in members:
            with contextlib.suppress(Exception):
                await consumer.close(code=CLOSE_RESYNC)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, QueueHub] = weakref.WeakKeyDictionary()


def queue_hub(layer: Any) -> QueueHub:
    """The hub of the running event loop (one per server process; tests run several loops)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None or hub.layer is not layer:
        hub = _hubs[loop] = QueueHub(layer)
    return hub


class DeskConsumer(AsyncWebsocketConsumer):
    """Base: subclasses say which groups a user may join; None means refuse."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Hand each message to its handler, without Channels' hop to a thread per message.

        Channels closes stale database connections before every handler, on its one shared
        thread: with hundreds of sockets on a queue, every push queued hundreds of hops there.
        These handlers only relay; the one that reads the database (the handshake) does it
        through ``middleware.on_any_thread``, which gives its connection back itself.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        # Off Channels' single shared thread, so a few hundred pages reconnecting at once
        # (after a restart) are checked in parallel instead of timing out in one line.
        groups = await on_any_thread(self.groups_for)(user)
        if groups is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        # Join before accepting: the page resyncs on open, so no push can fall in between.
        await self.subscribe(groups)
        self.joined = [events.user_group(user.pk)]
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def subscribe(self, groups: list[str]) -> None:
        """Receive the groups' pushes (each socket its own copy, unless a subclass shares)."""
        self.joined_own = groups
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        for group in [*getattr(self, "joined_own", []), *getattr(self, "joined", [])]:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Ignore anything a client sends."""

    async def desk_html(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["html"])

    async def desk_hint(self, event: dict[str, Any]) -> None:
        """Something the page shows changed: it refetches its own fragments over HTTP."""
        await self.send(text_data=json.dumps({"changed": event["changed"]}))

    async def desk_close(self, event: dict[str, Any]) -> None:
        """The user logged out elsewhere: the page reloads into the login."""
        await self.close(code=CLOSE_UNAUTHENTICATED)

    def groups_for(self, user: Any) -> list[str] | None:
        raise NotImplementedError


class QueueConsumer(DeskConsumer):
    """Live queue: every queue the user reviews, or the one named in the URL.

    Queue rows reach the socket through the process's ``QueueHub``, not its own channel.
    """

    async def subscribe(self, groups: list[str]) -> None:
        self.hub_groups = groups
        hub = queue_hub(self.channel_layer)
        for group in groups:
            await hub.join(group, self)

    async def disconnect(self, code: int) -> None:
        hub = queue_hub(self.channel_layer)
        for group in getattr(self, "hub_groups", []):
            await hub.leave(group, self)
        await super().disconnect(code)

    def groups_for(self, user: Any) -> list[str] | None:
        queues = inbox.queues_for_user(user)
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
        if thread is None or not threads.thread_can_view(user, thread):
            return None
        return [events.thread_group(thread.pk)]


class OpsConsumer(DeskConsumer):
    """The ops page's hints, for staff and the "ops" group."""

    def groups_for(self, user: Any) -> list[str] | None:
        from reviewdesk.queries import ops

        return [events.OPS_GROUP] if ops.user_can_ops(user) else None


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other socket path: refused before accepting, like a 404.

    Without a route, Channels' URLRouter raises and Daphne logs a traceback and answers the
    handshake with a 500.
    """

    async def connect(self) -> None:
        await self.close(code=CLOSE_NOT_FOUND)
