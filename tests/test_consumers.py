"""WebSocket consumers through the real ASGI app and the real Redis channel layer."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction
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
        assert 'hx-swap-oob="beforeend:#queue-rows[data-live-rows]"' in html
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
        # A hint, not HTML: the page fetches its own fragments (as this user) over HTTP.
        assert await comm.receive_json_from(timeout=5) == {"changed": "thread"}
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


def test_an_idle_socket_stays_open_and_still_receives_pushes(reviewer: Any) -> None:
    """An idle consumer blocks in BZPOPMIN for 5 s at a time; its Redis read must outlast that.

    With redis-py's default 5 s socket timeout the receive loop raised TimeoutError and Daphne
    closed every idle socket (1011) about every 6 s.
    """
    reviewer_cookie = login_cookie(reviewer)
    item = ReviewItemFactory()

    async def scenario() -> None:
        comm = communicator("/ws/queue/", reviewer_cookie)
        assert (await comm.connect())[0]
        # Two blocking rounds and more with nothing to receive; a crashed consumer would show
        # its exception on the next receive.
        assert await comm.receive_nothing(timeout=12, interval=0.5)
        await sync_to_async(events.item_changed)(item.pk)
        html = await comm.receive_from(timeout=5)
        assert f'id="item-{item.pk}"' in html
        await comm.disconnect()

    run(scenario)


# --- what thread and item pages are pushed ------------------------------------------------------


def test_an_item_change_pushes_its_row_to_queues_and_a_hint_to_its_thread(reviewer: Any) -> None:
    reviewer_cookie = login_cookie(reviewer)
    item = ReviewItemFactory(value="How old?")

    async def scenario() -> None:
        queue = communicator("/ws/queue/", reviewer_cookie)
        thread = communicator(f"/ws/thread/{item.thread_id}/", reviewer_cookie)
        assert (await queue.connect())[0] and (await thread.connect())[0]
        await sync_to_async(events.item_changed)(item.pk)
        assert f'id="item-{item.pk}"' in await queue.receive_from(timeout=5)  # rows as before
        assert await thread.receive_json_from(timeout=5) == {"changed": "thread"}
        assert await thread.receive_nothing(timeout=0.3)
        await queue.disconnect()
        await thread.disconnect()

    run(scenario)


def test_a_thread_hint_costs_the_sender_no_query_and_no_render(
    reviewer: Any, django_assert_num_queries: Any
) -> None:
    """A worker pays for a hint's group_send only: pages refetch what they show."""
    item = ReviewItemFactory()
    with django_assert_num_queries(0):
        events.thread_changed(item.thread_id)
    with django_assert_num_queries(1):  # the item's row, for queue pages
        events.item_changed(item.pk)


def test_pushes_of_one_transaction_leave_once_after_commit(reviewer: Any) -> None:
    reviewer_cookie = login_cookie(reviewer)
    first = ReviewItemFactory(value="First?")
    second = ReviewItemFactory(value="Second?", thread=first.thread)
    thread_id = first.thread_id

    def change(*, commit: bool) -> None:
        with transaction.atomic():
            events.item_changed_on_commit(second.pk)
            events.item_changed_on_commit(first.pk)
            events.item_changed_on_commit(first.pk)
            events.thread_changed_on_commit(thread_id)
            if not commit:
                transaction.set_rollback(True)

    async def scenario() -> None:
        queue = communicator("/ws/queue/", reviewer_cookie)
        thread = communicator(f"/ws/thread/{thread_id}/", reviewer_cookie)
        assert (await queue.connect())[0] and (await thread.connect())[0]

        await sync_to_async(change)(commit=False)
        assert await queue.receive_nothing(timeout=0.5)
        assert await thread.receive_nothing(timeout=0.1)

        await sync_to_async(change)(commit=True)
        rows = [await queue.receive_from(timeout=5), await queue.receive_from(timeout=5)]
        # Each item once, oldest first (the queue's order).
        assert [f'id="item-{first.pk}"' in r for r in rows] == [True, False]
        assert f'id="item-{second.pk}"' in rows[1]
        assert await thread.receive_json_from(timeout=5) == {"changed": "thread"}
        assert await queue.receive_nothing(timeout=0.3)
        assert await thread.receive_nothing(timeout=0.1)
        await queue.disconnect()
        await thread.disconnect()

    run(scenario)


def test_a_rolled_back_savepoint_does_not_hold_back_the_rest(reviewer: Any) -> None:
    reviewer_cookie = login_cookie(reviewer)
    item = ReviewItemFactory()

    def change() -> None:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    events.item_changed_on_commit(item.pk)
                    raise RuntimeError("roll back this savepoint")
            except RuntimeError:
                pass
            events.thread_changed_on_commit(item.thread_id)

    async def scenario() -> None:
        thread = communicator(f"/ws/thread/{item.thread_id}/", reviewer_cookie)
        assert (await thread.connect())[0]
        await sync_to_async(change)()
        assert await thread.receive_json_from(timeout=5) == {"changed": "thread"}
        await thread.disconnect()

    run(scenario)


def test_nothing_user_specific_reaches_a_thread_group(
    reviewer: Any, other_reviewer: Any, staff: Any
) -> None:
    """A real answer, a real failing run and a retry: the group hears hints only.

    The answer form (CSRF token) and the staff-only traceback and Retry button are fetched by
    each page over HTTP, never broadcast.
    """
    from reviewdesk.engine import runs
    from reviewdesk.services import items as item_services
    from reviewdesk.services import threads as thread_services
    from tests.support import pending, start

    thread = start("brittle", {}, staff)
    [item] = pending(thread)
    reviewer_cookie = login_cookie(reviewer)

    def story() -> None:
        item_services.review_item_answer(item_id=item.pk, reviewer=other_reviewer, answer="boom")
        runs.thread_advance(thread_id=thread.pk)
        thread_services.thread_retry(thread_id=thread.pk, user=staff)
        runs.thread_advance(thread_id=thread.pk)

    async def scenario() -> None:
        comm = communicator(f"/ws/thread/{thread.pk}/", reviewer_cookie)
        assert (await comm.connect())[0]
        await sync_to_async(story)()
        heard = []
        while not await comm.receive_nothing(timeout=0.5):
            heard.append(await comm.receive_from(timeout=1))
        assert heard and set(heard) == {'{"changed": "thread"}'}
        await comm.disconnect()

    run(scenario)
