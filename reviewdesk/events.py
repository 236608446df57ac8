"""The only place that pushes to browsers.

Two kinds of push, both safe to broadcast because neither is specific to a user:
- queue pages get their rows as HTML (the same partial the page renders): hundreds of sockets may
  watch one queue, so the row is rendered once and no page has to come back for it;
- thread and item pages get a hint, ``{"changed": "thread"}``: each page then fetches its own
  fragments over HTTP, with its own login, permissions and CSRF token (the answer form, the
  staff-only traceback and Retry button), and the worker never renders them nor reads the
  checkpointer to push.

Pushes are hints (channels' group_send is at-most-once): pages also fetch on every (re)connect.
They leave only after commit, so nobody sees state that may still roll back, and everything one
transaction changed leaves together: each item's row is rendered once, each thread is hinted
once, and all of it goes out over one event loop (a push from a worker otherwise pays for a new
loop and a new Redis connection each time).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import logging
import os
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import channel_layers
from django.db import transaction
from django.template.loader import render_to_string

from reviewdesk.engine import aio
from reviewdesk.models import ReviewItem

log = logging.getLogger(__name__)

# What a thread or item page receives: "refetch your fragments".
THREAD_HINT = {"type": "desk.hint", "changed": "thread"}
# The ops page's group: one hint per committed change (the page refetches one request at a time).
OPS_GROUP = "ops"
OPS_HINT = {"type": "desk.hint", "changed": "ops"}


def queue_group(queue_id: int) -> str:
    return f"queue.{queue_id}"


def thread_group(thread_id: UUID | str) -> str:
    return f"thread.{thread_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def user_logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Close the user's open sockets: Channels resolved the user once, at the handshake."""
    if user is not None:
        _send([(user_group(user.pk), {"type": "desk.close"})])


def item_changed_on_commit(item_id: int, *, queue: bool = True) -> None:
    """After commit: the item's row on queue pages, and a hint to its thread's pages.

    ``queue=False`` when the change cannot show on a queue page (an item that was not pending
    and still is not, e.g. answered → applied): no row is rendered or sent to hundreds of
    queue sockets for it. The caller then hints the thread itself (``thread_changed_on_commit``).
    """
    _schedule(items={item_id: queue})


def thread_changed_on_commit(thread_id: UUID | str) -> None:
    """After commit: a hint to the thread's pages (its thread page and its items' pages)."""
    _schedule(threads=[str(thread_id)])


def item_changed(item_id: int) -> None:
    """Push an item's change now (outside a transaction, or in tests)."""
    _Batch(items={item_id: True}).send()


def thread_changed(thread_id: UUID | str) -> None:
    """Push a thread's change now (outside a transaction, or in tests)."""
    _Batch(threads={str(thread_id): None}).send()


@dataclass
class _Batch:
    """What one transaction changed; sent once, by the first of its on-commit callbacks to run."""

    owner: weakref.ref[Any] | None = None  # the outermost atomic block it belongs to
    items: dict[int, bool] = field(default_factory=dict)  # id → its queue row must be sent
    threads: dict[str, None] = field(default_factory=dict)
    sent: bool = False

    def send(self) -> None:
        if self.sent:
            return
        self.sent = True
        messages: list[tuple[str, dict[str, Any]]] = []
        threads = dict(self.threads)
        rows = [pk for pk, queue in self.items.items() if queue]
        changed = (
            ReviewItem.objects.select_related("thread", "queue").filter(pk__in=rows)
            if rows
            else ReviewItem.objects.none()
        )
        for item in changed.order_by("created_at", "id"):
            html = render_to_string("reviewdesk/queue.html#item-push", {"item": item})
            group = queue_group(item.queue_id)
            messages.append((group, {"type": "desk.html", "html": html, "group": group}))
            threads[str(item.thread_id)] = None
        messages += [(thread_group(thread_id), THREAD_HINT) for thread_id in threads]
        if messages:
            messages.append((OPS_GROUP, OPS_HINT))
        _send(messages)


_local = threading.local()


def _schedule(*, items: dict[int, bool] | None = None, threads: Iterable[str] = ()) -> None:
    """Add to the current transaction's batch and make sure it is sent when that commits.

    Every call registers its own callback (sending is idempotent), so the batch still leaves if
    the savepoint of an earlier call rolled back. A batch whose transaction rolled back entirely
    is never sent; a later transaction of the same atomic block may send its stale ids along,
    which is harmless: pushes re-read everything they show.
    """
    connection = transaction.get_connection()
    if not (connection.in_atomic_block and connection.atomic_blocks):
        _Batch(items=dict(items or {}), threads=dict.fromkeys(threads)).send()
        return
    outermost = connection.atomic_blocks[0]
    batch: _Batch | None = getattr(_local, "batch", None)
    if batch is None or batch.sent or batch.owner is None or batch.owner() is not outermost:
        batch = _local.batch = _Batch(owner=weakref.ref(outermost))
    for pk, queue in (items or {}).items():
        batch.items[pk] = batch.items.get(pk, False) or queue
    batch.threads.update(dict.fromkeys(threads))
    transaction.on_commit(batch.send, robust=True)


@functools.cache
def _push_layer() -> Any:
    """A channel layer of its own for pushes from sync code, used only on the engine loop.

    Not the process-wide one: channels-redis keeps a connection pool per event loop and
    closes every loop's pools from whichever loop calls ``flush``/``close_pools`` on it.
    """
    return channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)


_order = threading.Lock()
_last: tuple[int, concurrent.futures.Future[None]] | None = None  # (pid, the latest batch)


def _send(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """group_send each message in order on the engine loop, without waiting for Redis.

    A push is a hint, so the caller (an answer's HTTP response, a worker's next run) does not
    wait for its round trips; batches still leave in the order they were made, each after the
    one before. A failed push is logged, never raised. The engine loop lives as long as the
    process, and so does the channel layer's Redis connection pool on it; pushes still on
    their way when the process exits are given a moment to leave (``flush``).
    """
    global _last
    if not messages:
        return

    async def send_all(previous: concurrent.futures.Future[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(previous)
        layer = _push_layer()
        for group, message in messages:
            try:
                await layer.group_send(group, message)
            except Exception:  # a push is a hint; pages resync on reconnect
                log.warning("push to %s failed", group, exc_info=True)

    with _order:
        previous = _last[1] if _last and _last[0] == os.getpid() else None
        future = asyncio.run_coroutine_threadsafe(send_all(previous), aio.loop())
        _last = (os.getpid(), future)


@atexit.register
def flush(timeout: float = 5.0) -> None:
    """Wait (a bounded time) until every push made so far has left."""
    last = _last
    if last is None or last[0] != os.getpid():
        return
    with contextlib.suppress(Exception):
        last[1].result(timeout)
