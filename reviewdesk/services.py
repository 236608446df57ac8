"""Every state change of the desk: start, advance, answer, retry, reconcile.

Each function changes the database, writes the audit row and schedules the live push in one
transaction; pushes and Celery tasks leave only after commit. The per-thread lock is the thread
row (``select_for_update``; on SQLite the IMMEDIATE transaction mode plays that part), always taken
before any of the thread's item rows so answers and runs never deadlock.
"""

from __future__ import annotations

import logging
import traceback as tb
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from langgraph.errors import InvalidUpdateError
from langgraph.types import Command, StateUpdate

from reviewdesk import events, payloads, queries, registry
from reviewdesk.models import AuditEvent, Queue, ReviewItem, Thread
from reviewdesk.payloads import AnswerError, answer_validate, to_json

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from langgraph.pregel import Pregel
    from langgraph.types import StateSnapshot

log = logging.getLogger(__name__)

DEFAULT_QUEUE = "default"


class AlreadyDecided(Exception):
    """Someone else decided this item first; the message says who and when."""

    def __init__(self, item: ReviewItem) -> None:
        who = item.answered_by.get_username() if item.answered_by else "someone else"
        when = f" at {item.answered_at:%H:%M:%S}" if item.answered_at else ""
        if item.status == ReviewItem.Status.SUPERSEDED:
            message = "This question was withdrawn by the graph; there is nothing to answer."
        else:
            message = f"This item was already answered by {who}{when}. Your answer was not sent."
        super().__init__(message)
        self.item = item


def audit(
    action: str,
    *,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    thread: Thread | None = None,
    item: ReviewItem | None = None,
    **data: Any,
) -> AuditEvent:
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_label=actor_label or (actor.get_username() if actor else "system"),
        thread=thread,
        item=item,
        data=to_json(data),
    )


def _enqueue_advance(thread_id: UUID | str) -> None:
    """Enqueue a run after commit; if Redis is down the reconciler enqueues it later."""
    from reviewdesk import tasks

    transaction.on_commit(lambda: tasks.thread_advance.delay(str(thread_id)), robust=True)


# --- starting ------------------------------------------------------------------------------------


def thread_start(
    *, graph: str, input: Any, user: AbstractBaseUser | None = None, actor_label: str = ""
) -> Thread:
    """Record a new run of a registered graph and enqueue its first advance."""
    if graph not in registry.graph_specs():
        raise registry.UnknownGraph(f"No graph named {graph!r}.")
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
        _enqueue_advance(thread.pk)
        events.thread_changed_on_commit(thread.pk)
    return thread


# --- advancing (the worker) ------------------------------------------------------------------


@dataclass
class _Plan:
    kind: str  # "start", "resume", "recover" or "retry"
    payload: Any = None
    answers: list[ReviewItem] = field(default_factory=list)


def thread_advance(*, thread_id: UUID | str, task_id: str = "") -> str:
    """Run a thread's graph until it interrupts, finishes or fails; return what was done.

    Safe to call any number of times, concurrently and after crashes: under the thread's lock it
    re-reads the thread and the checkpointer and does only what is still owed.
    """
    # Step 1, committed on its own: count the attempt and show "running". A worker killed during
    # step 2 loses step 2's transaction but not this, so a run that keeps dying is capped.
    with transaction.atomic():
        thread = Thread.objects.select_for_update().filter(pk=thread_id).first()
        if thread is None:
            return "missing"
        try:
            graph = registry.graph_get(thread.graph)
        except registry.UnknownGraph:
            if thread.status in (*Thread.ACTIVE, Thread.Status.INTERRUPTED):
                _fail(thread, error=f"The graph {thread.graph!r} is no longer registered.")
            return "failed"
        if _plan(thread, graph) is None:
            return "nothing to do"
        thread.attempts += 1
        if thread.attempts > settings.REVIEWDESK_MAX_ATTEMPTS:
            _fail(
                thread,
                error=f"Gave up after {thread.attempts - 1} attempts: the run kept dying "
                "(worker killed or out of memory?). Retry it once the cause is fixed.",
            )
            return "gave up"
        thread.status = Thread.Status.RUNNING
        thread.save(update_fields=["attempts", "status", "updated_at"])
        events.thread_changed_on_commit(thread.pk)

    # Step 2: the run and its mirror into items, atomically, still under the lock.
    with transaction.atomic():
        thread = Thread.objects.select_for_update().get(pk=thread_id)
        plan = _plan(thread, graph)
        if plan is None:  # a duplicate delivery finished the work in between
            return "nothing to do"
        config = _run_config(thread, plan, task_id)
        sent = plan.answers
        try:
            if plan.kind == "retry":
                _clear_failed_step(graph, config)
            graph.invoke(plan.payload, config, durability="sync")
        except Exception as exc:
            log.exception("thread %s failed", thread.pk)
            _mark_applied(sent)
            _fail(thread, error=f"{type(exc).__name__}: {exc}", trace=tb.format_exc())
            return "failed"
        _mark_applied(sent)
        _mirror(thread, graph)
        return plan.kind


def _plan(thread: Thread, graph: Pregel) -> _Plan | None:
    """What this thread is still owed, read from the desk's rows and the checkpointer."""
    if thread.status in (Thread.Status.COMPLETED, Thread.Status.CANCELLED):
        return None
    if thread.status == Thread.Status.FAILED and not thread.retry_requested:
        return None
    snapshot = graph.get_state(thread.langgraph_config)
    if snapshot.created_at is None:
        # Never checkpointed: the first run (or one that died before its first checkpoint).
        # Never re-send the input otherwise: that would start over with new interrupt ids.
        return _Plan("start", thread.input)
    if thread.retry_requested:
        return _Plan("retry")
    pending = {i.id for i in snapshot.interrupts}
    answered = list(thread.items.filter(status=ReviewItem.Status.ANSWERED))
    ready = [item for item in answered if item.interrupt_id in pending]
    if ready:
        # One map for every available answer: resuming one branch alone re-runs its siblings.
        return _Plan("resume", Command(resume={i.interrupt_id: i.answer for i in ready}), ready)
    if thread.status in Thread.ACTIVE or answered:
        # Left queued/running by a dead worker, or answers whose resume already happened in a
        # run that died before its mirror committed: continue from the last checkpoint.
        return _Plan("recover")
    return None


def _run_config(thread: Thread, plan: _Plan, task_id: str) -> dict[str, Any]:
    # Primitive metadata is stamped on every checkpoint: each step says who caused it.
    who = sorted({i.answered_by.get_username() for i in plan.answers if i.answered_by})
    return {
        **thread.langgraph_config,
        "metadata": {
            "reviewdesk_run": plan.kind,
            "reviewdesk_task": task_id,
            "reviewdesk_items": ",".join(str(i.pk) for i in plan.answers),
            "reviewdesk_answered_by": ",".join(who),
        },
    }


def _clear_failed_step(graph: Pregel, config: dict[str, Any]) -> None:
    """Drop the failed step's stored writes so its node asks again instead of replaying.

    A node that raised after interrupt() returned keeps that answer and replays it forever; a
    no-op state update on the step's checkpoint discards it and the question comes back with a
    new id. A failure without a stored answer simply re-runs.
    """
    snapshot = graph.get_state(config)
    if not _has_stored_answer(graph, snapshot):
        return
    try:
        graph.update_state(config, None)
    except InvalidUpdateError:  # the step had parallel nodes: name them all
        parent = graph.get_state(snapshot.parent_config)
        graph.bulk_update_state(config, [[StateUpdate(None, t.name) for t in parent.tasks]])


def _has_stored_answer(graph: Pregel, snapshot: StateSnapshot) -> bool:
    tup = graph.checkpointer.get_tuple(snapshot.config)
    return bool(tup and any(w[1] == "__resume__" for w in tup.pending_writes or []))


def _answer_was_recorded(graph: Pregel, config: dict[str, Any], interrupt_id: str) -> bool:
    """Did some earlier run deliver an answer to this interrupt (read from raw writes)?"""
    for tup in graph.checkpointer.list(config, limit=50):
        writes = tup.pending_writes or []
        asked_by = {
            task
            for task, channel, value in writes
            if channel == "__interrupt__"
            and any(getattr(i, "id", None) == interrupt_id for i in value)
        }
        if any(task in asked_by and channel == "__resume__" for task, channel, _ in writes):
            return True
    return False


def _mark_applied(items: list[ReviewItem]) -> None:
    now = timezone.now()
    for item in items:
        item.move_to(ReviewItem.Status.APPLIED)
        item.applied_at = now
        item.save(update_fields=["status", "applied_at", "updated_at"])
        audit("item_applied", actor_label="worker", thread=item.thread, item=item)
        events.item_changed_on_commit(item.pk)


def _fail(thread: Thread, *, error: str, trace: str = "") -> None:
    """Mark the thread failed, close its open items (a retry asks again) and tell everyone."""
    thread.status = Thread.Status.FAILED
    thread.error = error
    thread.traceback = trace
    thread.attempts = 0
    thread.retry_requested = False
    thread.save()
    for item in thread.items.filter(status__in=ReviewItem.OPEN):
        item.move_to(ReviewItem.Status.SUPERSEDED)
        item.save(update_fields=["status", "updated_at"])
        audit("item_superseded", actor_label="worker", thread=thread, item=item, reason="failed")
        events.item_changed_on_commit(item.pk)
    audit("thread_failed", actor_label="worker", thread=thread, error=error)
    events.thread_changed_on_commit(thread.pk)


def _mirror(thread: Thread, graph: Pregel) -> None:
    """Make the open items match the checkpointer's pending interrupts, then set the status."""
    snapshot = graph.get_state(thread.langgraph_config)
    pending = {i.id: i for i in snapshot.interrupts}
    nodes = {i.id: t.name for t in snapshot.tasks for i in t.interrupts}
    items = {item.interrupt_id: item for item in thread.items.all()}
    now = timezone.now()

    for interrupt_id, item in items.items():
        if interrupt_id in pending or item.status not in ReviewItem.OPEN:
            continue
        if item.status == ReviewItem.Status.ANSWERED and _answer_was_recorded(
            graph, thread.langgraph_config, interrupt_id
        ):
            item.move_to(ReviewItem.Status.APPLIED)
            item.applied_at = now
            audit("item_applied", actor_label="worker", thread=thread, item=item, recovered=True)
        else:
            item.move_to(ReviewItem.Status.SUPERSEDED)
            audit("item_superseded", actor_label="worker", thread=thread, item=item)
        item.save()
        events.item_changed_on_commit(item.pk)

    for interrupt_id, interrupt in pending.items():
        value = to_json(interrupt.value)
        schema = to_json(interrupt.response_schema) if interrupt.response_schema else None
        item = items.get(interrupt_id)
        if item is None:
            item = ReviewItem.objects.create(
                thread=thread,
                interrupt_id=interrupt_id,
                queue=thread.queue,
                value=value,
                response_schema=schema,
                node=nodes.get(interrupt_id, ""),
            )
            audit("item_created", actor_label="worker", thread=thread, item=item, value=value)
        elif item.status in ReviewItem.OPEN:
            if item.value == value and item.response_schema == schema:
                continue
            # Same id, new payload: the node built a different question on re-run.
            item.value, item.response_schema = value, schema
            item.save(update_fields=["value", "response_schema", "updated_at"])
            audit("item_refreshed", actor_label="worker", thread=thread, item=item, value=value)
        else:
            # The checkpointer asks this id again: it must have exactly one open item.
            item.move_to(ReviewItem.Status.PENDING)
            item.value, item.response_schema = value, schema
            item.answer, item.answered_by, item.answered_at = None, None, None
            item.save()
            audit("item_reopened", actor_label="worker", thread=thread, item=item, value=value)
        events.item_changed_on_commit(item.pk)

    # Finished means no tasks left, not merely next == (): a crash can leave a written node.
    if not snapshot.tasks:
        thread.status = Thread.Status.COMPLETED
        thread.finished_at = now
        audit("thread_completed", actor_label="worker", thread=thread)
    elif pending:
        thread.status = Thread.Status.INTERRUPTED
    else:
        thread.status = Thread.Status.FAILED
        thread.error = "The run stopped with work left and no question pending."
        audit("thread_failed", actor_label="worker", thread=thread, error=thread.error)
    thread.attempts = 0
    thread.retry_requested = False
    thread.save()
    events.thread_changed_on_commit(thread.pk)


# --- people ---------------------------------------------------------------------------------


def review_item_answer(*, item_id: int, reviewer: AbstractBaseUser, answer: Any) -> ReviewItem:
    """Record a reviewer's decision and enqueue the resume; exactly one decision counts."""
    with transaction.atomic():
        thread_id = ReviewItem.objects.values_list("thread_id", flat=True).get(pk=item_id)
        thread = Thread.objects.select_for_update().get(pk=thread_id)
        item = (
            ReviewItem.objects.select_for_update(of=("self",))
            .select_related("answered_by")
            .get(pk=item_id)
        )
        if not queries.user_can_review(reviewer, item.queue_id):
            raise PermissionDenied("You are not a reviewer of this item's queue.")
        if item.status != ReviewItem.Status.PENDING:
            raise AlreadyDecided(item)
        if thread.status not in (*Thread.ACTIVE, Thread.Status.INTERRUPTED):
            raise AnswerError(f"This thread is {thread.status}; it takes no answers now.")
        answer_validate(value=item.value, response_schema=item.response_schema, answer=answer)
        item.move_to(ReviewItem.Status.ANSWERED)
        item.answer = answer
        item.answered_by = reviewer
        item.answered_at = timezone.now()
        item.save()
        if thread.status == Thread.Status.INTERRUPTED:
            thread.status = Thread.Status.QUEUED
            thread.save(update_fields=["status", "updated_at"])
        audit("item_answered", actor=reviewer, thread=thread, item=item, answer=answer)
        _enqueue_advance(thread.pk)
        events.item_changed_on_commit(item.pk)
        events.thread_changed_on_commit(thread.pk)
    return item


def thread_retry(
    *, thread_id: UUID | str, user: AbstractBaseUser | None, actor_label: str = ""
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
        audit("thread_retried", actor=user, actor_label=actor_label, thread=thread)
        _enqueue_advance(thread.pk)
        events.thread_changed_on_commit(thread.pk)
    return thread


# --- the reconciler -------------------------------------------------------------------------


def threads_reconcile() -> list[str]:
    """Re-enqueue threads a dead worker or a lost Redis message left owing a run.

    The database is the source of truth: threads still queued/running after the stale period,
    and answers never applied. Duplicates are harmless (thread_advance re-checks under lock);
    touching updated_at spaces out re-enqueues of a thread that is merely slow.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.REVIEWDESK_STALE_AFTER)
    stuck = Thread.objects.filter(status__in=Thread.ACTIVE, updated_at__lt=cutoff)
    unapplied = Thread.objects.filter(
        status__in=(*Thread.ACTIVE, Thread.Status.INTERRUPTED),
        items__status=ReviewItem.Status.ANSWERED,
        items__answered_at__lt=cutoff,
        updated_at__lt=cutoff,
    )
    ids = sorted(
        {str(pk) for pk in stuck.values_list("pk", flat=True)}
        | {str(pk) for pk in unapplied.values_list("pk", flat=True)}
    )
    for thread_id in ids:
        with transaction.atomic():
            updated = Thread.objects.filter(pk=thread_id, updated_at__lt=cutoff).update(
                updated_at=timezone.now()
            )
            if updated:
                audit("thread_reenqueued", actor_label="reconciler", thread=Thread(pk=thread_id))
                _enqueue_advance(thread_id)
    return ids
