"""SIGKILL the worker while a thread runs: nothing is lost, nothing is duplicated.

The killed worker's task stays unacked in Redis (redelivered only after the visibility timeout),
so recovery here is the reconciler's: real Celery beat re-enqueues from the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from reviewdesk.engine import registry
from reviewdesk.models import AuditEvent, ReviewItem, Thread
from reviewdesk.services import items as item_services
from reviewdesk.services import threads as thread_services
from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("transactional_db")

SLOW_SECONDS = 3


@pytest.fixture
def crash_env(desk_env: dict[str, str]) -> dict[str, str]:
    return {
        **desk_env,
        "REVIEWDESK_TEST_SLOW_SECONDS": str(SLOW_SECONDS),
        "REVIEWDESK_STALE_AFTER": "1",
        "REVIEWDESK_RECONCILE_INTERVAL": "1",
    }


@pytest.fixture
def workers(crash_env: dict[str, str], tmp_path: Any) -> Iterator[Any]:
    """Starts workers on demand; stops whatever is left at the end."""
    from reviewdesk.celery import app
    from tests import procs

    app.control.purge()
    started: list[Any] = []

    def start() -> Any:
        log = tmp_path / f"worker-{len(started)}.log"
        worker = procs.start_celery_worker(crash_env, concurrency=1, log_path=log)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def beat(crash_env: dict[str, str], tmp_path: Any) -> Iterator[Any]:
    from tests import procs

    proc = procs.start_celery_beat(crash_env, log_path=tmp_path / "beat.log")
    yield proc
    proc.stop()


def status_of(thread: Thread) -> str:
    thread.refresh_from_db()
    return thread.status


def test_worker_killed_mid_run_is_recovered_by_the_reconciler(
    workers: Any, beat: Any, staff: Any, reviewer: Any
) -> None:
    first = workers()
    thread = thread_services.thread_start(graph="slow", input={}, user=staff)
    wait_for(lambda: status_of(thread) == Thread.Status.RUNNING, what="the first run to start")
    first.kill()  # SIGKILL master and pool, mid-node: no checkpoint, no item yet

    assert status_of(thread) == Thread.Status.RUNNING
    assert not thread.items.exists()

    second = workers()
    wait_for(
        lambda: status_of(thread) == Thread.Status.INTERRUPTED,
        timeout=60,
        what="the reconciler to re-run the thread",
    )
    [item] = thread.items.all()
    assert item.status == ReviewItem.Status.PENDING

    # Now kill during the resume: the answer is recorded, the run dies mid-node.
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer="yes")
    wait_for(lambda: status_of(thread) == Thread.Status.RUNNING, what="the resume to start")
    second.kill()
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.ANSWERED

    workers()
    wait_for(
        lambda: status_of(thread) == Thread.Status.COMPLETED,
        timeout=60,
        what="the resume to be recovered",
    )
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.APPLIED
    assert thread.items.count() == 1  # neither lost nor duplicated
    values = registry.graph_get("slow").get_state(thread.langgraph_config).values
    assert values == {"answer": "yes", "done": True}
    assert AuditEvent.objects.filter(thread=thread, action="item_applied").count() == 1
    assert AuditEvent.objects.filter(thread=thread, action="thread_reenqueued").count() >= 2


def test_pool_child_killed_is_redelivered_at_once(workers: Any, staff: Any) -> None:
    """acks_late + reject_on_worker_lost: the master requeues the dead child's task."""
    worker = workers()
    thread = thread_services.thread_start(graph="slow", input={}, user=staff)
    wait_for(lambda: status_of(thread) == Thread.Status.RUNNING, what="the run to start")
    worker.kill_pool_child()
    wait_for(
        lambda: status_of(thread) == Thread.Status.INTERRUPTED,
        timeout=60,
        what="the redelivered task to finish the run",
    )
    assert thread.items.count() == 1
    thread.refresh_from_db()
    assert thread.attempts == 0
