"""Small helpers shared by tests: running graphs to their first stop, waiting for processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from reviewdesk import services
from reviewdesk.models import ReviewItem, Thread

T = TypeVar("T")


def wait_for(check: Callable[[], T], *, timeout: float = 30, what: str = "condition") -> T:
    """Poll until check() returns something truthy; fail with what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def start(graph: str, input: Any, user: Any = None) -> Thread:
    """Start a thread and run it to its first stop, as the worker would."""
    thread = services.thread_start(graph=graph, input=input, user=user)
    services.thread_advance(thread_id=thread.pk)
    thread.refresh_from_db()
    return thread


def pending(thread: Thread) -> list[ReviewItem]:
    return list(thread.items.filter(status=ReviewItem.Status.PENDING).order_by("id"))
