"""The engine through real Celery workers and beat, with graph steps that take seconds.

No timings are asserted: each test checks the order of events (an answer recorded while another
thread's run is still inside its step; a second thread served while the first still runs).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from reviewdesk import tasks
from reviewdesk.engine import registry
from reviewdesk.models import AuditEvent, ReviewItem, Thread
from reviewdesk.services import items as item_services
from reviewdesk.services import threads as thread_services
from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("transactional_db")

SLOW_SECONDS = 8


@pytest.fixture
def slow_env(desk_env: dict[str, str]) -> dict[str, str]:
    return {
        **desk_env,
        "REVIEWDESK_TEST_SLOW_SECONDS": str(SLOW_SECONDS),
        "REVIEWDESK_STALE_AFTER": "1",
        "REVIEWDESK_RECONCILE_INTERVAL": "1",
    }


@pytest.fixture
def threads_worker(slow_env: dict[str, str], tmp_path: Any) -> Iterator[Any]:
    """The default pool: threads, several slots."""
    from reviewdesk.celery import app
    from tests import procs

    app.control.purge()
    worker = procs.start_celery_worker(
        slow_env, pool="threads", concurrency=4, log_path=tmp_path / "worker.log"
    )
    yield worker
    worker.stop()


@pytest.fixture
def beat(slow_env: dict[str, str], tmp_path: Any) -> Iterator[Any]:
    from tests import procs

    proc = procs.start_celery_beat(slow_env, log_path=tmp_path / "beat.log")
    yield proc
    proc.stop()


def status_of(thread: Thread) -> str:
    thread.refresh_from_db()
    return thread.status


def first_question(thread: Thread) -> ReviewItem:
    def asked() -> ReviewItem | None:
        assert status_of(thread) != Thread.Status.FAILED, thread.error
        return thread.items.filter(status=ReviewItem.Status.PENDING).first()

    return wait_for(asked, timeout=60, what=f"{thread.graph} to ask")


def test_six_copies_of_one_resume_are_harmless(
    threads_worker: Any, staff: Any, reviewer: Any
) -> None:
    """Red team: duplicates used to count attempts, fail healthy threads and lose answers."""
    thread = thread_services.thread_start(graph="age", input={"name": "Ada"}, user=staff)
    item = first_question(thread)
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer="41")
    for _ in range(6):
        tasks.thread_advance.delay(str(thread.pk))
    wait_for(lambda: status_of(thread) == Thread.Status.COMPLETED, timeout=60, what="completion")
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.APPLIED
    assert thread.attempts == 0 and not thread.error
    assert AuditEvent.objects.filter(thread=thread, action="item_applied").count() == 1
    values = registry.graph_get("age").get_state(thread.langgraph_config).values
    assert values["age"] == 41


def test_a_long_step_blocks_no_one(threads_worker: Any, staff: Any, reviewer: Any) -> None:
    """While one thread sits in an 8 s step, another is answered through the form and served."""
    quick = thread_services.thread_start(graph="age", input={"name": "Bo"}, user=staff)
    item = first_question(quick)
    slow = thread_services.thread_start(graph="slow", input={}, user=staff)
    wait_for(lambda: status_of(slow) == Thread.Status.RUNNING, what="the slow step to start")

    client = Client()
    client.force_login(reviewer)
    response = client.post(
        f"/items/{item.pk}/answer/",
        {"mode": "text", "answer": "30"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    item.refresh_from_db()
    assert item.status in (ReviewItem.Status.ANSWERED, ReviewItem.Status.APPLIED)
    assert status_of(slow) == Thread.Status.RUNNING  # the answer did not wait for it

    wait_for(lambda: status_of(quick) == Thread.Status.COMPLETED, what="the quick thread")
    assert status_of(slow) == Thread.Status.RUNNING  # served while the slow step still ran
    first_question(slow)


def test_the_reconciler_leaves_a_live_long_step_alone(
    threads_worker: Any, beat: Any, staff: Any, reviewer: Any
) -> None:
    """An 8 s step with a 1 s stale period and a 1 s sweep: never a second run."""
    thread = thread_services.thread_start(graph="slow", input={}, user=staff)
    wait_for(lambda: status_of(thread) == Thread.Status.RUNNING, what="the slow step to start")
    assert thread.worker and thread.run_started_at
    item = first_question(thread)
    assert thread.items.count() == 1
    assert not AuditEvent.objects.filter(thread=thread, action="thread_reenqueued").exists()
    # One run started: the attempt counter went 0 → 1 once and back to 0 with the outcome
    # (read again: first_question's last refresh may predate the outcome's commit).
    thread.refresh_from_db()
    assert thread.attempts == 0

    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer="go")
    wait_for(lambda: status_of(thread) == Thread.Status.COMPLETED, timeout=60, what="completion")
    assert not AuditEvent.objects.filter(thread=thread, action="thread_reenqueued").exists()
    assert AuditEvent.objects.filter(thread=thread, action="item_applied").count() == 1


def test_the_reconciler_never_waits_on_a_running_thread(
    threads_worker: Any, staff: Any, settings: Any
) -> None:
    """Red team: on PostgreSQL the sweep waited on the running thread's row lock for the run."""
    from reviewdesk.engine import reconcile

    thread = thread_services.thread_start(graph="slow", input={}, user=staff)
    wait_for(lambda: status_of(thread) == Thread.Status.RUNNING, what="the slow step to start")
    settings.REVIEWDESK_STALE_AFTER = 0  # every thread looks stale to this sweep

    assert str(thread.pk) not in reconcile.threads_reconcile()
    assert status_of(thread) == Thread.Status.RUNNING  # the sweep returned mid-step
    assert not AuditEvent.objects.filter(thread=thread, action="thread_reenqueued").exists()
    first_question(thread)
