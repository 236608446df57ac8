"""The only place that pushes to browsers: it renders the partials the pages render.

Pushes are hints (channels' group_send is at-most-once): pages re-fetch on every (re)connect.
Every push is scheduled with on_commit so nobody sees state that may still roll back.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.template.loader import render_to_string

from reviewdesk import queries
from reviewdesk.models import ReviewItem, Thread

log = logging.getLogger(__name__)


def queue_group(queue_id: int) -> str:
    return f"queue.{queue_id}"


def thread_group(thread_id: UUID | str) -> str:
    return f"thread.{thread_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def user_logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Close the user's open sockets: Channels resolved the user once, at the handshake."""
    if user is not None:
        _send(user_group(user.pk), {"type": "desk.close"})


def item_changed_on_commit(item_id: int) -> None:
    transaction.on_commit(lambda: item_changed(item_id), robust=True)


def thread_changed_on_commit(thread_id: UUID | str) -> None:
    transaction.on_commit(lambda: thread_changed(thread_id), robust=True)


def item_changed(item_id: int) -> None:
    """Queue pages: drop the item's row, and add it back if it is pending."""
    item = ReviewItem.objects.select_related("thread", "queue").filter(pk=item_id).first()
    if item is None:
        return
    html = render_to_string("reviewdesk/queue.html#item-push", {"item": item})
    _send(queue_group(item.queue_id), {"type": "desk.html", "html": html})


def thread_changed(thread_id: UUID | str) -> None:
    """Item and thread pages: the thread's status and open items, and its state."""
    thread = Thread.objects.filter(pk=thread_id).first()
    if thread is None:
        return
    html = render_to_string("reviewdesk/thread.html#thread-push", queries.thread_context(thread))
    _send(thread_group(thread.pk), {"type": "desk.html", "html": html})


def _send(group: str, message: dict[str, Any]) -> None:
    try:
        async_to_sync(get_channel_layer().group_send)(group, message)
    except Exception:  # a push is a hint; the page resyncs on reconnect
        log.warning("push to %s failed", group, exc_info=True)
