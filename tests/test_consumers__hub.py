"""The queue hub: one subscription per process, relayed to every queue socket of the process.

Over real Redis: the suite's for sockets through the ASGI app, a private one (killed on
purpose) for the hub's recovery.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from reviewdesk import consumers, events
from tests.factories import ReviewItemFactory
from tests.test_consumers import communicator, login_cookie, run

pytestmark = pytest.mark.usefixtures("transactional_db", "channel_layer")


def group_members(group: str) -> int:
    """How many channels Redis holds for a group (channels-redis keeps a sorted set)."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
        return int(client.zcard(f"{prefix}:group:{group}"))
    finally:
        client.close()


def test_many_queue_sockets_share_one_subscription(reviewer: Any) -> None:
    cookie = login_cookie(reviewer)
    item = ReviewItemFactory(value="Shared?")
    group = events.queue_group(item.queue_id)

    async def scenario() -> None:
        pages = [communicator("/ws/queue/", cookie) for _ in range(20)]
        for page in pages:
            assert (await page.connect())[0]
        assert await sync_to_async(group_members)(group) == 1  # the hub, not 20 sockets

        await sync_to_async(events.item_changed)(item.pk)
        for page in pages:
            assert f'id="item-{item.pk}"' in await page.receive_from(timeout=5)

        for page in pages[:-1]:
            await page.disconnect()
        await sync_to_async(events.item_changed)(item.pk)
        assert f'id="item-{item.pk}"' in await pages[-1].receive_from(timeout=5)
        await pages[-1].disconnect()
        assert await sync_to_async(group_members)(group) == 0  # the last page took it along

    run(scenario)


class Page:
    """A stand-in for a socket: what the hub wrote to it, and how it was closed."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[str] = asyncio.Queue()
        self.closed: list[int] = []

    async def send(self, text_data: str) -> None:
        await self.received.put(text_data)

    async def close(self, code: int) -> None:
        self.closed.append(code)


def test_a_lost_subscription_sends_pages_back_to_reconnect(tmp_path: Path) -> None:
    """Redis restarted and forgot every group: the hub cannot know what it missed."""
    from tests import procs

    redis = procs.start_redis(tmp_path / "hub.sock")

    async def scenario() -> None:
        layer = RedisChannelLayer(hosts=[{"address": redis.url, "socket_timeout": 15}])
        hub = consumers.QueueHub(layer)
        page = Page()
        await hub.join("queue.7", page)  # type: ignore[arg-type]
        await layer.group_send("queue.7", {"type": "desk.html", "html": "row", "group": "queue.7"})
        assert await asyncio.wait_for(page.received.get(), 5) == "row"

        redis.kill()
        for _ in range(100):
            if page.closed:
                break
            await asyncio.sleep(0.1)
        assert page.closed == [consumers.CLOSE_RESYNC]
        assert hub.sockets == {} and hub.channel is None

    try:
        asyncio.run(scenario())
    finally:
        redis.stop()


def test_the_hub_is_one_per_event_loop() -> None:
    async def hub() -> Any:
        return consumers.queue_hub(get_channel_layer())

    async def twice() -> tuple[Any, Any]:
        return await hub(), await hub()

    first, again = asyncio.run(twice())
    assert first is again
    assert asyncio.run(hub()) is not first
