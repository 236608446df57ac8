"""Celery tasks: ids in, a service call, nothing else (the database holds the state)."""

from __future__ import annotations

from celery import shared_task

from reviewdesk import services


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def thread_advance(self, thread_id: str) -> str:  # type: ignore[no-untyped-def]
    """Run a thread until it interrupts, finishes or fails (safe to deliver twice)."""
    return services.thread_advance(thread_id=thread_id, task_id=self.request.id or "")


@shared_task
def threads_reconcile() -> int:
    """Beat: re-enqueue what dead workers or a restarted Redis left owing."""
    return len(services.threads_reconcile())
