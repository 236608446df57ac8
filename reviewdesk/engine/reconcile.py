"""The reconciler: the database is the source of truth for what runs are owed."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reviewdesk.engine import locks
from reviewdesk.models import ReviewItem, Thread
from reviewdesk.services.audit import audit
from reviewdesk.services.threads import enqueue_advance

log = logging.getLogger(__name__)


def threads_reconcile() -> list[str]:
    """Re-enqueue threads owed a run that no live worker is doing; return their ids.

    Owed: still queued/running after the stale period (a dead worker, or a task Redis lost), or
    holding answers never applied. A thread whose run mutex is held has a live worker, however
    long its step, and is left alone: the reconciler never starts a second run. It takes no
    lock a run holds (the row update skips rows a short transaction has locked), so it never
    waits on a running thread. Touching ``updated_at`` spaces out re-enqueues of a thread whose
    task merely waits in a long queue; duplicates are harmless anyway.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.REVIEWDESK_STALE_AFTER)
    stuck = Thread.objects.filter(status__in=Thread.ACTIVE, updated_at__lt=cutoff)
    unapplied = Thread.objects.filter(
        status__in=(*Thread.ACTIVE, Thread.Status.INTERRUPTED),
        items__status=ReviewItem.Status.ANSWERED,
        items__answered_at__lt=cutoff,
        updated_at__lt=cutoff,
    )
    candidates = {str(pk) for pk in stuck.values_list("pk", flat=True)} | {
        str(pk) for pk in unapplied.values_list("pk", flat=True)
    }
    if not candidates:
        return []
    running = locks.mutex().held(candidates)
    repaired = []
    for thread_id in sorted(candidates - running):
        with transaction.atomic():
            touched = (
                Thread.objects.select_for_update(skip_locked=True)
                .filter(pk=thread_id, updated_at__lt=cutoff)
                .values_list("pk", flat=True)
            )
            if not list(touched):
                continue
            Thread.objects.filter(pk=thread_id).update(updated_at=timezone.now())
            audit("thread_reenqueued", actor_label="reconciler", thread=Thread(pk=thread_id))
            enqueue_advance(thread_id)
            repaired.append(thread_id)
    if repaired:
        log.info("reconciler re-enqueued %d thread(s): %s", len(repaired), ", ".join(repaired))
    return repaired
