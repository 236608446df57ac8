"""WebSocket consumers through the real ASGI app and the real Redis channel layer."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from reviewdesk import consumers, events
from reviewdesk.asgi import application
from tests.factories import ReviewItemFactory

pytestmark = pytest.mark.usefixtures("transactional_db", "channel_layer")


def login_cookie(user: Any) -> bytes:
    """A real session cookie, made synchronously before the async scenario runs."""
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def communicator(path: str, cookie: bytes = b"", origin: bytes = b"http://127.0.0.1") -> Any:
    headers = [(b"origin", origin), (b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, path, headers=headers)


def run(coro_fn: Any) -> Any:
    return async_to_sync(coro_fn)()


def test_anonymous_sockets_are_refused() -> None:
    async def scenario() -> None:
        for path in ("/ws/queue/", "/ws/queue/default/"):
            comm = communicator(path)
            connected, code = await comm.connect()
            assert (connected, code) == (False, consumers.CLOSE_UNAUTHENTICATED)
            await comm.disconnect()

    run(scenario)


def test_foreign_origins_are_refused(reviewer: Any) -> None:
    reviewer_cookie = login_cookie(reviewer)

    async def scenario() -> None:
        comm = communicator("/ws/queue/", reviewer_cookie, origin=b"http://evil.example")
        connected, _ = await comm.connect()
        assert not connected
        await comm.disconnect()

    run(scenario)


def test_queue_page_receives_new_items_escaped(reviewer: Any) -> None:
    reviewer_cookie = login_cookie(reviewer)
    item = ReviewItemFactory(value="<script>alert(1)</script> How old?")

    async def scenario() -> None:
        comm = communicator("/ws/queue/", reviewer_cookie)
        connected, _ = await comm.connect()
        assert connected
        await sync_to_async(events.item_changed)(item.pk)
        html = await comm.receive_from(timeout=5)
        assert f'id="item-{item.pk}"' in html
        assert 'hx-swap-oob="beforeend:#queue-items"' in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt; How old?" in html
        assert "<script>" not in html
        await comm.disconnect()

    run(scenario)


def test_decided_items_are_removed_from_open_queue_pages(reviewer: Any) -> None:
    reviewer_cookie = login_cookie(reviewer)
    item = ReviewItemFactory(status="answered")

    async def scenario() -> None:
        comm = communicator("/ws/queue/default/", reviewer_cookie)
        assert (await comm.connect())[0]
        await sync_to_async(events.item_changed)(item.pk)
        html = await comm.receive_from(timeout=5)
        assert f'<div id="item-{item.pk}" hx-swap-oob="delete"></div>' in html
        assert "beforeend" not in html
        await comm.disconnect()

    run(scenario)


def test_outsiders_hear_nothing_and_cannot_join_a_queue(outsider: Any) -> None:
    outsider_cookie = login_cookie(outsider)
    item = ReviewItemFactory()

    async def scenario() -> None:
        comm = communicator("/ws/queue/", outsider_cookie)
        assert (await comm.connect())[0]  # a page with no queues: connected, subscribed to none
        await sync_to_async(events.item_changed)(item.pk)
        assert await comm.receive_nothing(timeout=0.5)
        await comm.disconnect()

        named = communicator("/ws/queue/default/", outsider_cookie)
        assert await named.connect() == (False, consumers.CLOSE_FORBIDDEN)
        await named.disconnect()

    run(scenario)


def test_thread_progress_reaches_permitted_viewers_only(reviewer: Any, outsider: Any) -> None:
    reviewer_cookie = login_cookie(reviewer)
    outsider_cookie = login_cookie(outsider)
    item = ReviewItemFactory()
    path = f"/ws/thread/{item.thread_id}/"

    async def scenario() -> None:
        refused = communicator(path, outsider_cookie)
        assert await refused.connect() == (False, consumers.CLOSE_FORBIDDEN)
        await refused.disconnect()

        comm = communicator(path, reviewer_cookie)
        assert (await comm.connect())[0]
        await sync_to_async(events.thread_changed)(item.thread_id)
        html = await comm.receive_from(timeout=5)
        assert 'id="thread-progress"' in html and 'hx-swap-oob="true"' in html
        assert "Interrupted" in html
        await comm.disconnect()

    run(scenario)


def test_frames_from_clients_are_ignored(reviewer: Any) -> None:
    reviewer_cookie = login_cookie(reviewer)

    async def scenario() -> None:
        comm = communicator("/ws/queue/", reviewer_cookie)
        assert (await comm.connect())[0]
        await comm.send_to(text_data='{"answer": "approve", "item": 1}')
        await comm.send_to(bytes_data=b"\x00\xff garbage")
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()

    run(scenario)


def test_logging_out_closes_the_users_open_sockets(reviewer: Any) -> None:
    reviewer_cookie = login_cookie(reviewer)

    async def scenario() -> None:
        comm = communicator("/ws/queue/", reviewer_cookie)
        assert (await comm.connect())[0]
        client = Client()
        await sync_to_async(client.force_login)(reviewer)
        await sync_to_async(client.post)("/accounts/logout/", HTTP_HOST="127.0.0.1")
        closed = await comm.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": consumers.CLOSE_UNAUTHENTICATED}

    run(scenario)
