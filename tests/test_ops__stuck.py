"""Each kind of stuck thread is found after it is injected, and its one-click repair fixes it.

A real Celery worker does the repairing (the repair only marks the thread owed and enqueues
``thread_advance``, the reconciler's own action).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from reviewdesk.engine import locks, stuck
from reviewdesk.models import AuditEvent, ReviewItem, StuckThread, Thread
from reviewdesk.services import items as item_services
from reviewdesk.services import threads as thread_services
from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("transactional_db", "celery_worker")

LATER = timedelta(minutes=1)  # past the sweep's grace, without waiting for it


def asked(staff: Any) -> tuple[Thread, ReviewItem]:
    """An "age" thread stopped at its question by the worker."""
    thread = thread_services.thread_start(graph="age", input={}, user=staff)

    def ready() -> ReviewItem | None:
        thread.refresh_from_db()
        item = thread.items.filter(status="pending").first()
        return item if thread.status == "interrupted" and item else None

    item = wait_for(ready, what="the age question")
    # The worker records the question, then lets go of the run mutex: wait for that too.
    wait_for(lambda: not locks.mutex().held({str(thread.pk)}), what="the worker to let go")
    return thread, item


def sweep_finds(kind: str, thread: Thread) -> StuckThread:
    counts = stuck.stuck_sweep(now=timezone.now() + LATER)
    assert counts[kind] == 1, counts
    return StuckThread.objects.get(thread=thread, kind=kind)


def repaired(thread: Thread, kind: str, staff: Any, done: Any) -> None:
    stuck.stuck_repair(thread_id=str(thread.pk), kind=kind, user=staff)
    wait_for(done, what=f"the repair of {kind}")
    assert stuck.stuck_sweep(now=timezone.now() + LATER)[kind] == 0
    event = AuditEvent.objects.get(thread=thread, action="thread_repaired")
    assert (event.actor, event.data["kind"]) == (staff, kind)


def test_interrupted_with_no_open_item(staff: Any) -> None:
    thread, item = asked(staff)
    ReviewItem.objects.filter(pk=item.pk).delete()  # the desk lost the question's item
    found = sweep_finds(stuck.Kind.INTERRUPTED_NO_ITEM, thread)
    assert "asks 1 question" in found.detail

    def mirrored() -> bool:
        thread.refresh_from_db()
        return thread.status == "interrupted" and thread.items.filter(status="pending").exists()

    repaired(thread, stuck.Kind.INTERRUPTED_NO_ITEM, staff, mirrored)
    [again] = thread.items.filter(status="pending")
    assert again.interrupt_id == item.interrupt_id  # the same question, asked again as an item


def test_open_item_whose_interrupt_is_gone(staff: Any, reviewer: Any) -> None:
    thread, item = asked(staff)
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer="36")
    wait_for(lambda: Thread.objects.get(pk=thread.pk).status == "completed", what="completion")
    # A lost update leaves the answered question open on a completed thread.
    ReviewItem.objects.filter(pk=item.pk).update(
        status="pending", answer=None, answered_at=None, answered_by=None
    )
    found = sweep_finds(stuck.Kind.ITEM_NO_INTERRUPT, thread)
    assert str(item.pk) in found.detail

    def closed() -> bool:
        thread.refresh_from_db()
        item.refresh_from_db()
        return thread.status == "completed" and item.status == "superseded"

    repaired(thread, stuck.Kind.ITEM_NO_INTERRUPT, staff, closed)


def test_running_with_no_live_worker(staff: Any) -> None:
    thread, item = asked(staff)
    # As a worker killed mid-run leaves it: running, its mutex released with the process.
    Thread.objects.filter(pk=thread.pk).update(status="running", worker="gone/1")
    sweep_finds(stuck.Kind.RUNNING_NO_WORKER, thread)

    def waiting_again() -> bool:
        thread.refresh_from_db()
        return thread.status == "interrupted"

    repaired(thread, stuck.Kind.RUNNING_NO_WORKER, staff, waiting_again)
    assert list(thread.items.filter(status="pending")) == [item]


def test_answered_but_never_applied(staff: Any) -> None:
    thread, item = asked(staff)
    # An answer recorded while Redis was down: its resume task never reached a worker.
    ReviewItem.objects.filter(pk=item.pk).update(
        status="answered", answer="41", answered_at=timezone.now()
    )
    sweep_finds(stuck.Kind.ANSWERED_NOT_APPLIED, thread)

    def applied() -> bool:
        item.refresh_from_db()
        thread.refresh_from_db()
        return item.status == "applied" and thread.status == "completed"

    repaired(thread, stuck.Kind.ANSWERED_NOT_APPLIED, staff, applied)


def test_a_healthy_desk_has_nothing_stuck(staff: Any) -> None:
    asked(staff)
    assert sum(stuck.stuck_sweep(now=timezone.now() + LATER).values()) == 0
    with pytest.raises(stuck.NotStuck):
        stuck.stuck_repair(
            thread_id=str(Thread.objects.get().pk), kind=stuck.Kind.RUNNING_NO_WORKER
        )
