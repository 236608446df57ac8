"""Small helpers shared by tests: running graphs to their first stop, waiting for processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from reviewdesk.engine import runs
from reviewdesk.models import ReviewItem, Thread
from reviewdesk.services import threads as thread_services

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
    thread = thread_services.thread_start(graph=graph, input=input, user=user)
    runs.thread_advance(thread_id=thread.pk)
    thread.refresh_from_db()
    return thread


def pending(thread: Thread) -> list[ReviewItem]:
    return list(thread.items.filter(status=ReviewItem.Status.PENDING).order_by("id"))


def corrupt_checkpoints(thread: Thread) -> None:
    """Damage every stored checkpoint of a thread for real, as a bad row or a foreign writer would.

    The rows stay, but name a serialisation the checkpointer does not know, so reading the
    thread's state raises (SQLite keeps the checkpoint in `checkpoints`; PostgreSQL keeps
    non-primitive channel values in `checkpoint_blobs` and pending writes, such as a pending
    interrupt or a node's error, in `checkpoint_writes`).
    """
    import sqlite3

    from reviewdesk.engine import checkpoint

    thread_id = str(thread.pk)
    if checkpoint.is_postgres():
        import psycopg

        with psycopg.connect(checkpoint.postgres_conninfo(), autocommit=True) as conn:
            done = conn.execute(
                "UPDATE checkpoint_blobs SET type = 'bogus' "
                "WHERE thread_id = %s AND type <> 'empty'",
                (thread_id,),
            ).rowcount
            done += conn.execute(
                "UPDATE checkpoint_writes SET type = 'bogus' WHERE thread_id = %s", (thread_id,)
            ).rowcount
    else:
        with sqlite3.connect(checkpoint.sqlite_path(), timeout=60) as conn:
            done = conn.execute(
                "UPDATE checkpoints SET type = 'bogus' WHERE thread_id = ?", (thread_id,)
            ).rowcount
        conn.close()
    assert done, f"no checkpoint of thread {thread_id} to damage"
