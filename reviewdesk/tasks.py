"""Celery tasks: ids in, a service call, nothing else (the database holds the state)."""

from __future__ import annotations

from celery import shared_task

from reviewdesk.engine import reconcile, runs


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def thread_advance(self, thread_id: str) -> str:  # type: ignore[no-untyped-def]
    """Run a thread until it interrupts, finishes or fails (safe to deliver twice)."""
    return runs.thread_advance(thread_id=thread_id, task_id=self.request.id or "")


@shared_task
def threads_reconcile() -> int:
    """Beat: re-enqueue what dead workers or a restarted Redis left owing."""
    return len(reconcile.threads_reconcile())


@shared_task
def ops_sweep() -> int:
    """Beat: find stuck threads, check alert thresholds, fold the tally; 0 when all is quiet."""
    from reviewdesk import tally
    from reviewdesk.engine import stuck
    from reviewdesk.services import ops

    found = sum(stuck.stuck_sweep(since=ops.sweep_since()).values())
    notices = ops.alerts_check()
    tally.tally_compact()
    return found + len(notices)


@shared_task(bind=True, max_retries=8)
def alert_notice_deliver(self, notice_id: int) -> str:  # type: ignore[no-untyped-def]
    """Send an alert notice; a webhook that fails is retried with back-off (2 s … ~4 min)."""
    from reviewdesk.services import ops

    try:
        return ops.notice_deliver(
            notice_id=notice_id, attempt=self.request.retries + 1
        ).webhook_status
    except ops.WebhookFailed as exc:
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 1)) from exc
