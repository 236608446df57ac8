"""Staff actions on a thread's history: replay, edit state, cancel, retry, delete.

Each takes a required reason, is refused to anyone but staff, and leaves an audit record. None
of them runs a graph here: replay and edit are queued on the thread row (``Thread.action``)
and carried out by the engine's next run, under the thread's run mutex, exactly like an answer
(engine/runs.py plans them); so an action never races a run in progress. Pages and commands
call these same functions.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction

from reviewdesk import events, payloads
from reviewdesk.engine import checkpoint, locks, registry
from reviewdesk.models import ReviewItem, Thread
from reviewdesk.services.audit import audit
from reviewdesk.services.threads import enqueue_advance
from reviewdesk.services.threads import thread_retry as _thread_retry

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


class Refused(ValueError):
    """The action cannot be done as asked; the message says why, for a person to read."""


def _check(user: AbstractBaseUser | None, reason: str) -> str:
    if user is None or not user.is_active or not user.is_staff:
        raise PermissionDenied("Only staff may change a thread's history.")
    reason = (reason or "").strip()
    if not reason:
        raise Refused("A reason is required.")
    return reason[:2000]


def _queue_action(
    thread_id: UUID | str, kind: str, data: dict[str, Any], user: AbstractBaseUser
) -> Thread:
    """Put the action on the thread for its next run and enqueue that run (after commit)."""
    thread = Thread.objects.select_for_update().get(pk=thread_id)
    if thread.action:
        raise Refused(f"A {thread.action} is already waiting to run on this thread.")
    thread.action = kind
    thread.action_data = {**data, "by": user.get_username(), "token": uuid.uuid4().hex}
    if thread.status != Thread.Status.RUNNING:  # a running thread's run picks it up after
        thread.status = Thread.Status.QUEUED
    thread.retry_requested = False
    thread.error = thread.traceback = ""
    thread.finished_at = None
    thread.save()
    enqueue_advance(thread.pk)
    events.thread_changed_on_commit(thread.pk)
    return thread


def _open_by_node(thread: Thread, interrupt_ids: list[str] | None = None) -> dict[str, int]:
    """node → item asked there: the items the action's questions will repeat."""
    items = thread.items.filter(kind=ReviewItem.Kind.INTERRUPT)
    if interrupt_ids is None:
        items = items.filter(status__in=ReviewItem.OPEN)
    else:
        items = items.filter(interrupt_id__in=interrupt_ids)
    return {item.node: item.pk for item in items.order_by("created_at", "id") if item.node}


def thread_replay(
    *, thread_id: UUID | str, checkpoint_id: str, user: AbstractBaseUser | None, reason: str
) -> Thread:
    """Time travel: run the thread again from one of its past checkpoints.

    The questions pending at that checkpoint fire again as new items, each linked to the item
    it repeats; answering them continues the thread from there. Open items of the abandoned
    branch are superseded by the run (their interrupts are no longer pending).
    """
    reason = _check(user, reason)
    thread = Thread.objects.get(pk=thread_id)
    if thread.status == Thread.Status.CANCELLED:
        raise Refused("This thread was cancelled; it runs no more.")
    graph = registry.graph_get(thread.graph)
    config = {"configurable": {**thread.langgraph_config["configurable"]}}
    config["configurable"]["checkpoint_id"] = str(checkpoint_id)
    try:
        snapshot = graph.get_state(config)
    except Exception:
        snapshot = None
    if snapshot is None or snapshot.created_at is None:
        raise Refused(f"Thread {thread.pk} has no checkpoint {checkpoint_id!r}.")
    if not snapshot.tasks:
        raise Refused("Nothing runs from that checkpoint (the graph had finished there).")
    asked = [i.id for task in snapshot.tasks for i in task.interrupts]
    with transaction.atomic():
        repeats = _open_by_node(thread, asked)
        thread = _queue_action(
            thread_id,
            "replay",
            {"checkpoint_id": str(checkpoint_id), "reason": reason, "repeats": repeats},
            user,
        )
        audit(
            "thread_replayed",
            actor=user,
            thread=thread,
            reason=reason,
            checkpoint_id=str(checkpoint_id),
            repeats=sorted(repeats.values()),
        )
    return thread


def thread_state_edit(
    *,
    thread_id: UUID | str,
    values: Any,
    user: AbstractBaseUser | None,
    reason: str,
    as_node: str = "",
) -> Thread:
    """Edit the thread's state (``update_state``) and continue it from there.

    A question pending when the state changes is asked again (a new item linked to the old).
    """
    reason = _check(user, reason)
    thread = Thread.objects.get(pk=thread_id)
    if thread.status == Thread.Status.CANCELLED:
        raise Refused("This thread was cancelled; it runs no more.")
    if not isinstance(values, dict) or not values:
        raise Refused("The edit must be a JSON object of state keys and their new values.")
    keys = registry.state_keys(thread.graph)
    unknown = sorted(set(values) - keys)
    if unknown:
        raise Refused(
            f"The state has no key {unknown[0]!r}; its keys are: {', '.join(sorted(keys))}."
        )
    try:
        size = payloads.storable_size(values, what="edit")
    except ValueError as exc:  # a value the database or checkpointer cannot store
        raise Refused(str(exc)) from None
    if size > settings.REVIEWDESK_MAX_INPUT_BYTES:
        raise Refused(f"The edit is too large ({size} bytes).")
    if registry.graph_get(thread.graph).get_state(thread.langgraph_config).created_at is None:
        raise Refused("The thread has no state yet: wait for its first step.")
    with transaction.atomic():
        repeats = _open_by_node(thread)
        thread = _queue_action(
            thread_id,
            "edit",
            {"values": values, "as_node": as_node, "reason": reason, "repeats": repeats},
            user,
        )
        audit("thread_state_edited", actor=user, thread=thread, reason=reason, values=values)
    return thread


def thread_cancel(*, thread_id: UUID | str, user: AbstractBaseUser | None, reason: str) -> Thread:
    """Stop a thread for good: its open questions are withdrawn and it is never run again.

    A run in progress finishes its current invoke (a graph cannot be stopped mid-step) and
    then records nothing more.
    """
    reason = _check(user, reason)
    with transaction.atomic():
        thread = Thread.objects.select_for_update().get(pk=thread_id)
        if thread.status in (Thread.Status.COMPLETED, Thread.Status.CANCELLED):
            raise Refused(f"This thread is {thread.status} already.")
        thread.status = Thread.Status.CANCELLED
        thread.action, thread.action_data, thread.retry_requested = "", None, False
        thread.save()
        for item in thread.items.select_for_update().filter(status__in=ReviewItem.OPEN):
            item.move_to(ReviewItem.Status.SUPERSEDED)
            item.save(update_fields=["status", "updated_at"])
            audit("item_superseded", actor=user, thread=thread, item=item, reason="cancelled")
            events.item_changed_on_commit(item.pk)
        audit("thread_cancelled", actor=user, thread=thread, reason=reason)
        events.thread_changed_on_commit(thread.pk)
    return thread


def thread_retry(*, thread_id: UUID | str, user: AbstractBaseUser | None, reason: str) -> Thread:
    """Retry a failed thread, with the reason on record."""
    reason = _check(user, reason)
    try:
        return _thread_retry(thread_id=thread_id, user=user, reason=reason)
    except ValueError as exc:
        if isinstance(exc, Refused):
            raise
        raise Refused(str(exc)) from None


def thread_delete(
    *, thread_id: UUID | str, user: AbstractBaseUser | None, reason: str, confirm: str
) -> None:
    """Delete a thread, its items and its checkpoints; its audit trail stays.

    Holds the thread's run mutex, so no run is writing checkpoints while they are deleted.
    """
    reason = _check(user, reason)
    thread = Thread.objects.get(pk=thread_id)
    if (confirm or "").strip() != str(thread.pk):
        raise Refused("Type the thread's id to confirm the deletion.")
    with locks.holding(str(thread.pk)) as held:
        if held is None:
            raise Refused("The thread is running right now; cancel it or try again shortly.")
        checkpoint.thread_delete(str(thread.pk))
        with transaction.atomic():
            audit(
                "thread_deleted",
                actor=user,
                reason=reason,
                thread_id=str(thread.pk),
                graph=thread.graph,
                status=thread.status,
            )
            Thread.objects.filter(pk=thread.pk).delete()
            events.thread_changed_on_commit(thread.pk)
        held.discard = True
