"""Starting and retrying threads (runs of registered graphs)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings
from django.db import transaction

from reviewdesk import events, payloads
from reviewdesk.engine import registry
from reviewdesk.models import Queue, Thread
from reviewdesk.services.audit import audit

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

DEFAULT_QUEUE = "default"


def enqueue_advance(thread_id: UUID | str) -> None:
    """Enqueue a run after commit; if Redis is down the reconciler enqueues it later."""
    from reviewdesk import tasks

    transaction.on_commit(lambda: tasks.thread_advance.delay(str(thread_id)), robust=True)


def thread_start(
    *, graph: str, input: Any, user: AbstractBaseUser | None = None, actor_label: str = ""
) -> Thread:
    """Record a new run of a registered graph and enqueue its first advance."""
    if graph not in registry.graph_specs():
        raise registry.UnknownGraph(f"No graph named {graph!r}.")
    if input is None:  # LangGraph reads invoke(None) as "continue", and the column is NOT NULL
        raise payloads.AnswerError("The input cannot be null; start with an object such as {}.")
    size = payloads.storable_size(input, what="input")
    if size > settings.REVIEWDESK_MAX_INPUT_BYTES:
        raise ValueError(
            f"The input is too large ({size} bytes; limit {settings.REVIEWDESK_MAX_INPUT_BYTES})."
        )
    with transaction.atomic():
        queue, _ = Queue.objects.get_or_create(
            slug=DEFAULT_QUEUE, defaults={"name": "Default queue"}
        )
        thread = Thread.objects.create(graph=graph, input=input, started_by=user, queue=queue)
        audit("thread_started", actor=user, actor_label=actor_label, thread=thread, input=input)
        enqueue_advance(thread.pk)
        events.thread_changed_on_commit(thread.pk)
    return thread


def thread_retry(
    *, thread_id: UUID | str, user: AbstractBaseUser | None, actor_label: str = "", reason: str = ""
) -> Thread:
    """Re-run a failed thread; a stored answer that made it fail is discarded and asked again."""
    with transaction.atomic():
        thread = Thread.objects.select_for_update().get(pk=thread_id)
        if thread.status != Thread.Status.FAILED:
            raise ValueError(f"Only failed threads can be retried; this one is {thread.status}.")
        thread.status = Thread.Status.QUEUED
        thread.retry_requested = True
        thread.attempts = 0
        thread.save()
        audit("thread_retried", actor=user, actor_label=actor_label, thread=thread, reason=reason)
        enqueue_advance(thread.pk)
        events.thread_changed_on_commit(thread.pk)
    return thread


@functools.lru_cache(maxsize=10_000)
def _thread_graph(thread_id: str) -> str | None:
    # A thread's graph never changes, so one look per thread per process is enough.
    return Thread.objects.filter(pk=thread_id).values_list("graph", flat=True).first()


def thread_worker_queue(thread_id: str) -> str | None:
    """The Celery queue that runs this thread's graph (REVIEWDESK_WORKER_QUEUES), if routed."""
    routes = settings.REVIEWDESK_WORKER_QUEUES
    if not routes:
        return None
    graph = _thread_graph(thread_id)
    return routes.get(graph) if graph else None
