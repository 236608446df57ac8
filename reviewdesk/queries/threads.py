"""Threads: who may see one, and what its pages and pushes render."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet
from django.utils.functional import SimpleLazyObject

from reviewdesk.engine import registry
from reviewdesk.models import ReviewItem, Thread
from reviewdesk.payloads import to_json
from reviewdesk.queries.inbox import review_items_for_user

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

log = logging.getLogger(__name__)


def thread_can_view(user: AbstractBaseUser | AnonymousUser, thread: Thread) -> bool:
    """Staff, or a reviewer of a queue that holds one of the thread's items."""
    if not user.is_authenticated:
        return False
    return user.is_staff or review_items_for_user(user).filter(thread=thread).exists()


def thread_context(thread: Thread) -> dict[str, Any]:
    """What the thread-progress and thread-state partials render, wherever they render.

    The state is read from the checkpointer only if a template shows it: an answer's response
    or a claim's panel renders neither partial and must not pay for the read.
    """
    return {
        "thread": thread,
        "open_items": thread.items.filter(status__in=ReviewItem.OPEN),
        "state": SimpleLazyObject(lambda: thread_state(thread)),
    }


def thread_items(thread: Thread) -> QuerySet[ReviewItem]:
    """Every item the thread ever asked, oldest first, for its items table."""
    return thread.items.select_related("answered_by").order_by("created_at", "id")


def thread_state(thread: Thread) -> dict[str, Any]:
    """The thread's current values and next nodes from the checkpointer, JSON-safe.

    Never raises: a thread whose state cannot be read (its graph is no longer registered, its
    checkpoint is damaged, the checkpointer is down) must still show its status, its error and
    its Retry button, so the state is marked unavailable with the reason instead.
    """
    try:
        graph = registry.graph_get(thread.graph)
    except registry.UnknownGraph:
        return _unavailable(f"the graph {thread.graph!r} is no longer registered.")
    try:
        snapshot = graph.get_state(thread.langgraph_config)
        values = snapshot.values if isinstance(snapshot.values, dict) else {}
        messages = values.get("messages", [])
        return {
            "values": to_json(snapshot.values),
            "next": [str(node) for node in snapshot.next],
            "messages": [
                m for m in map(_message, messages if isinstance(messages, list) else []) if m
            ],
            "unavailable": "",
            "detail": "",
        }
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"
        # One line: pages of such a thread keep asking (on every hint and resync).
        log.warning("cannot read the state of thread %s: %s", thread.pk, detail)
        return _unavailable("the checkpointer could not read it.", detail=detail)


def _unavailable(reason: str, *, detail: str = "") -> dict[str, Any]:
    # detail may name databases or hosts: the template shows it to staff only.
    return {"values": None, "next": [], "messages": [], "unavailable": reason, "detail": detail}


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
