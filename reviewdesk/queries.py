"""Reads: what a user may see, and the views of threads the pages and pushes render."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet

from reviewdesk import registry
from reviewdesk.models import Queue, ReviewItem, Thread
from reviewdesk.payloads import to_json

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


def queues_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Queue]:
    """Staff see every queue; reviewers the queues of their groups."""
    if not user.is_authenticated:
        return Queue.objects.none()
    if user.is_staff:
        return Queue.objects.all()
    return Queue.objects.filter(groups__user=user).distinct()


def user_can_review(user: AbstractBaseUser | AnonymousUser, queue_id: int) -> bool:
    return queues_for_user(user).filter(pk=queue_id).exists()


def review_items_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[ReviewItem]:
    return ReviewItem.objects.filter(queue__in=queues_for_user(user)).select_related(
        "thread", "queue", "answered_by"
    )


def review_items_pending(
    user: AbstractBaseUser | AnonymousUser, *, queue: Queue | None = None
) -> QuerySet[ReviewItem]:
    """The review queue: pending items, oldest first."""
    items = review_items_for_user(user).filter(status=ReviewItem.Status.PENDING)
    if queue is not None:
        items = items.filter(queue=queue)
    return items.order_by("created_at", "id")


def thread_can_view(user: AbstractBaseUser | AnonymousUser, thread: Thread) -> bool:
    """Staff, or a reviewer of a queue that holds one of the thread's items."""
    if not user.is_authenticated:
        return False
    return user.is_staff or review_items_for_user(user).filter(thread=thread).exists()


def thread_context(thread: Thread) -> dict[str, Any]:
    """What the thread-progress and thread-state partials render, wherever they render."""
    return {
        "thread": thread,
        "open_items": thread.items.filter(status__in=ReviewItem.OPEN),
        "state": thread_state(thread),
    }


def thread_state(thread: Thread) -> dict[str, Any]:
    """The thread's current values and next nodes from the checkpointer, JSON-safe."""
    try:
        graph = registry.graph_get(thread.graph)
    except registry.UnknownGraph:
        return {"values": None, "next": [], "messages": []}
    snapshot = graph.get_state(thread.langgraph_config)
    values = snapshot.values if isinstance(snapshot.values, dict) else {}
    return {
        "values": to_json(snapshot.values),
        "next": list(snapshot.next),
        "messages": [_message(m) for m in values.get("messages", []) if _message(m)],
    }


def _message(message: Any) -> dict[str, Any] | None:
    """A chat message as role/content/tool calls, whatever form the state keeps it in."""
    if isinstance(message, dict):
        role, content = message.get("role") or message.get("type"), message.get("content")
        tool_calls = message.get("tool_calls") or []
    elif hasattr(message, "content"):
        role, content = getattr(message, "type", ""), message.content
        tool_calls = getattr(message, "tool_calls", None) or []
    else:
        return None
    if not isinstance(content, str):
        content = to_json(content)
    return {
        "role": {"human": "user", "ai": "assistant"}.get(str(role), str(role)),
        "content": content,
        "tool_calls": [
            {"name": c.get("name", ""), "args": to_json(c.get("args", {}))}
            for c in tool_calls
            if isinstance(c, dict)
        ],
    }
