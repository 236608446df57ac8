"""Stuck threads: found by indexed queries, confirmed by the checkpointer, repaired by the engine.

Four kinds, each a state the desk cannot leave by itself:

- ``interrupted_no_item``: the thread waits for people (status interrupted) but has no open item
  to answer; the checkpointer says what it really waits for.
- ``item_no_interrupt``: an open item on a thread that has ended (completed, failed, cancelled):
  nobody can answer it, and the checkpointer no longer asks it.
- ``running_no_worker``: status running, but no live worker holds the thread's run mutex.
- ``answered_not_applied``: an answer no live worker is applying.

Candidates come from database queries that use indexes (status, open items); the checkpointer is
read only for those candidates, never thread by thread over the whole desk. A repair is the
reconciler's own action: mark the thread owed and enqueue ``thread_advance``, which re-plans from
the database and the checkpointer (mirroring questions into items, superseding vanished ones,
continuing a dead run). Threads that ended by failing or being cancelled are never re-run: their
orphan items are closed instead. Every repair is audited.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from reviewdesk import events
from reviewdesk.engine import locks, registry
from reviewdesk.models import Queue, ReviewItem, StuckThread, Thread
from reviewdesk.services.audit import audit
from reviewdesk.services.threads import enqueue_advance

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

log = logging.getLogger(__name__)

Kind = StuckThread.Kind
# A state younger than this may be a run between two phases: not stuck yet.
GRACE = timedelta(seconds=10)
# Checkpointer reads one sweep may make; the rest wait for the next sweep, oldest first.
MAX_CHECKS = 200
ENDED = (Thread.Status.COMPLETED, Thread.Status.FAILED, Thread.Status.CANCELLED)


def stuck_find(
    *, now: datetime | None = None, since: datetime | None = None, recheck: set[str] = frozenset()
) -> dict[tuple[str, str], str]:
    """{(thread id, kind): detail} for every stuck thread found now.

    With `since`, the two kinds that need a join over every waiting thread look only at
    threads changed since then (an index range on status and updated_at) and at `recheck`;
    without it, at all of them (the hourly full sweep: a million waiting threads take seconds).
    """
    now = now or timezone.now()
    cutoff = now - GRACE
    found: dict[tuple[str, str], str] = {}
    open_items = ReviewItem.objects.filter(thread=OuterRef("pk"), status__in=ReviewItem.OPEN)
    changed = Q()
    if since is not None:
        changed = Q(updated_at__gte=since) | Q(pk__in=recheck)

    # Waiting for people with nothing to answer: confirm against the checkpointer.
    waiting = (
        Thread.objects.filter(changed, status=Thread.Status.INTERRUPTED, updated_at__lt=cutoff)
        .exclude(Exists(open_items))
        .order_by("updated_at")
        .only("id", "graph")[:MAX_CHECKS]
    )
    for thread in waiting:
        detail = _waiting_detail(thread)
        if detail:
            found[(str(thread.pk), Kind.INTERRUPTED_NO_ITEM)] = detail

    # Open items on ended threads: confirm the checkpointer no longer asks them.
    ended = Thread.objects.filter(changed, status__in=ENDED).values("pk")
    orphans = (
        ReviewItem.objects.filter(
            status__in=ReviewItem.OPEN, thread__in=ended, updated_at__lt=cutoff
        )
        .select_related("thread")
        .order_by("updated_at")[:MAX_CHECKS]
    )
    by_thread: dict[str, list[ReviewItem]] = {}
    for item in orphans:
        by_thread.setdefault(str(item.thread_id), []).append(item)
    for thread_id, items in by_thread.items():
        thread = items[0].thread
        asked = _pending_ids(thread)
        gone = [i for i in items if thread.status != Thread.Status.COMPLETED or i.interrupt_id
                not in (asked or set())]  # fmt: skip
        if gone:
            ids = ", ".join(str(i.pk) for i in gone)
            found[(thread_id, Kind.ITEM_NO_INTERRUPT)] = (
                f"thread {thread.status}; open item(s) {ids} no longer asked"
            )

    # Running, or holding answers, with nobody running it: the run mutex tells.
    running = {
        str(pk)
        for pk in Thread.objects.filter(
            status=Thread.Status.RUNNING, updated_at__lt=cutoff
        ).values_list("pk", flat=True)
    }
    answered = {
        str(thread_id): item_id
        for queue_id in Queue.objects.values_list("pk", flat=True)  # (queue, status) index
        for thread_id, item_id in ReviewItem.objects.filter(
            queue_id=queue_id, status=ReviewItem.Status.ANSWERED, answered_at__lt=cutoff
        ).values_list("thread_id", "pk")
    }
    if running or answered:
        live = locks.mutex().held(running | set(answered))
        for thread_id in sorted(running - live):
            found[(thread_id, Kind.RUNNING_NO_WORKER)] = "no live worker holds its run mutex"
        for thread_id in sorted(set(answered) - live):
            found[(thread_id, Kind.ANSWERED_NOT_APPLIED)] = (
                f"item {answered[thread_id]} answered, no live worker is applying it"
            )
    return found


def _pending_ids(thread: Thread) -> set[str] | None:
    """The interrupt ids the checkpointer still asks; None when the state cannot be read."""
    try:
        snapshot = registry.graph_get(thread.graph).get_state(thread.langgraph_config)
    except Exception as exc:  # an unreadable state is shown on the thread page; not ours
        log.warning("stuck sweep: cannot read thread %s: %s", thread.pk, exc)
        return None
    return {i.id for i in snapshot.interrupts}


def _waiting_detail(thread: Thread) -> str:
    try:
        snapshot = registry.graph_get(thread.graph).get_state(thread.langgraph_config)
    except Exception as exc:
        log.warning("stuck sweep: cannot read thread %s: %s", thread.pk, exc)
        return ""
    if snapshot.interrupts:
        return f"the checkpointer asks {len(snapshot.interrupts)} question(s); no open item"
    if snapshot.tasks:
        return f"the checkpointer is paused before {', '.join(snapshot.next)}; no open item"
    return "the checkpointer has finished; the desk still shows it waiting"


def stuck_sweep(*, now: datetime | None = None, since: datetime | None = None) -> dict[str, int]:
    """Find stuck threads and store the findings (what no longer holds is removed); counts by kind.

    `since`: an incremental sweep (threads changed since then, and every earlier finding).
    Logs only when it finds something it had not found before.
    """
    now = now or timezone.now()
    recheck = {str(pk) for pk in StuckThread.objects.values_list("thread_id", flat=True)}
    found = stuck_find(now=now, since=since, recheck=recheck)
    with transaction.atomic():
        known = {
            (str(row.thread_id), row.kind): row for row in StuckThread.objects.select_for_update()
        }
        gone = [row.pk for key, row in known.items() if key not in found]
        StuckThread.objects.filter(pk__in=gone).delete()
        new = []
        for (thread_id, kind), detail in found.items():
            row = known.get((thread_id, kind))
            if row is None:
                new.append(
                    StuckThread(
                        thread_id=thread_id, kind=kind, detail=detail, found_at=now, seen_at=now
                    )
                )
            else:
                StuckThread.objects.filter(pk=row.pk).update(detail=detail, seen_at=now)
        # A thread deleted meanwhile has no row to point at: skip it rather than fail the sweep.
        existing = {
            str(pk)
            for pk in Thread.objects.filter(pk__in={r.thread_id for r in new}).values_list(
                "pk", flat=True
            )
        }
        StuckThread.objects.bulk_create([r for r in new if str(r.thread_id) in existing])
    if new:
        log.warning(
            "stuck threads found: %s",
            ", ".join(f"{r.thread_id} ({r.kind})" for r in new),
        )
    counts = dict.fromkeys(Kind.values, 0)
    for _thread_id, kind in found:
        counts[kind] += 1
    return counts


class NotStuck(Exception):
    """The thread is no longer in the state the repair was for."""


def stuck_repair(
    *, thread_id: str, kind: str, user: AbstractBaseUser | None = None, actor_label: str = ""
) -> str:
    """Repair one stuck thread through the engine's own path; audited. Returns what was done."""
    thread_id = str(thread_id)
    with transaction.atomic():
        thread = Thread.objects.select_for_update().filter(pk=thread_id).first()
        if thread is None:
            raise NotStuck("No such thread.")
        if kind == Kind.RUNNING_NO_WORKER and thread.status != Thread.Status.RUNNING:
            raise NotStuck(f"The thread is {thread.status} now, not running.")
        if kind in (Kind.RUNNING_NO_WORKER, Kind.ANSWERED_NOT_APPLIED) and locks.mutex().held(
            {thread_id}
        ):
            raise NotStuck("A live worker is running this thread now.")
        action = "re-enqueued"
        if kind == Kind.ITEM_NO_INTERRUPT and thread.status in (
            Thread.Status.FAILED,
            Thread.Status.CANCELLED,
        ):
            # An ended thread is never run again by a repair: close what it left open.
            for item in thread.items.filter(status__in=ReviewItem.OPEN):
                item.move_to(ReviewItem.Status.SUPERSEDED)
                item.save(update_fields=["status", "updated_at"])
                audit(
                    "item_superseded",
                    actor=user,
                    actor_label=actor_label,
                    thread=thread,
                    item=item,
                    reason=f"stuck repair ({kind})",
                )
                events.item_changed_on_commit(item.pk)
            action = "closed its open items"
        else:
            if thread.status in (Thread.Status.INTERRUPTED, Thread.Status.COMPLETED):
                # Owed a round again: the next advance re-plans (and the reconciler retries it
                # if the task is lost), mirroring the checkpointer into items.
                thread.status = Thread.Status.QUEUED
            thread.save(update_fields=["status", "updated_at"])
            enqueue_advance(thread.pk)
        audit(
            "thread_repaired",
            actor=user,
            actor_label=actor_label,
            thread=thread,
            kind=kind,
            repair=action,
        )
        StuckThread.objects.filter(thread_id=thread_id, kind=kind).delete()
        events.thread_changed_on_commit(thread.pk)
    log.info("stuck thread %s (%s) repaired: %s", thread_id, kind, action)
    return action
