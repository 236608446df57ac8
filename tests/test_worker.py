"""Every example graph from start to completion through a real Celery worker and real Redis."""

from __future__ import annotations

from typing import Any

import pytest

from reviewdesk import tasks
from reviewdesk.engine import registry
from reviewdesk.models import AuditEvent, ReviewItem, Thread
from reviewdesk.services import items as item_services
from reviewdesk.services import threads as thread_services
from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("transactional_db", "celery_worker")


def wait_pending(thread: Thread, count: int, timeout: float = 30) -> list[ReviewItem]:
    """Wait until the worker has stopped the thread at `count` open questions."""

    def check() -> list[ReviewItem] | None:
        thread.refresh_from_db()
        items = list(thread.items.filter(status=ReviewItem.Status.PENDING).order_by("id"))
        if thread.status == Thread.Status.INTERRUPTED and len(items) == count:
            return items
        assert thread.status != Thread.Status.FAILED, thread.error
        return None

    return wait_for(check, timeout=timeout, what=f"{count} pending item(s) on {thread.graph}")


def wait_completed(thread: Thread, timeout: float = 30) -> dict[str, Any]:
    def check() -> bool:
        thread.refresh_from_db()
        assert thread.status != Thread.Status.FAILED, thread.error
        return thread.status == Thread.Status.COMPLETED

    wait_for(check, timeout=timeout, what=f"{thread.graph} to complete")
    return registry.graph_get(thread.graph).get_state(thread.langgraph_config).values


def example(graph: str) -> Any:
    return registry.graph_specs()[graph].example_input


def test_age_reasks_until_valid(staff: Any, reviewer: Any) -> None:
    thread = thread_services.thread_start(graph="age", input=example("age"), user=staff)
    [first] = wait_pending(thread, 1)
    item_services.review_item_answer(item_id=first.pk, reviewer=reviewer, answer="not a number")
    [second] = wait_for(
        lambda: [i for i in wait_pending(thread, 1) if i.pk != first.pk],
        what="the age question asked again",
    )
    assert "not a valid age" in second.value
    item_services.review_item_answer(item_id=second.pk, reviewer=reviewer, answer="36")
    assert wait_completed(thread)["age"] == 36


def test_chatbot_human_assistance(staff: Any, reviewer: Any) -> None:
    thread = thread_services.thread_start(graph="chatbot", input=example("chatbot"), user=staff)
    [item] = wait_pending(thread, 1)
    assert "query" in item.value
    item_services.review_item_answer(
        item_id=item.pk, reviewer=reviewer, answer={"data": "Try LangGraph"}
    )
    assert "Try LangGraph" in wait_completed(thread)["messages"][-1].content


def test_agent_approval(staff: Any, reviewer: Any) -> None:
    thread = thread_services.thread_start(graph="agent", input=example("agent"), user=staff)
    [item] = wait_pending(thread, 1)
    assert item.value["action_requests"][0]["name"] == "send_email"
    item_services.review_item_answer(
        item_id=item.pk, reviewer=reviewer, answer={"decisions": [{"type": "approve"}]}
    )
    assert "Email sent" in wait_completed(thread)["messages"][-1].content


def test_parallel_approval_publishes_exactly_once_under_duplicate_delivery(
    staff: Any, reviewer: Any, other_reviewer: Any
) -> None:
    thread = thread_services.thread_start(
        graph="parallel_approval", input=example("parallel_approval"), user=staff
    )
    legal, brand = wait_pending(thread, 2)

    item_services.review_item_answer(item_id=legal.pk, reviewer=reviewer, answer={"approved": True})
    # Inject duplicate delivery on purpose: two workers race for the same resume.
    tasks.thread_advance.delay(str(thread.pk))
    tasks.thread_advance.delay(str(thread.pk))
    assert wait_pending(thread, 1) == [brand]

    item_services.review_item_answer(
        item_id=brand.pk, reviewer=other_reviewer, answer={"approved": True}
    )
    tasks.thread_advance.delay(str(thread.pk))
    tasks.thread_advance.delay(str(thread.pk))
    values = wait_completed(thread)
    assert len(values["published"]) == 1
    assert thread.items.count() == 2
    assert set(thread.items.values_list("status", flat=True)) == {"applied"}
    assert AuditEvent.objects.filter(thread=thread, action="item_applied").count() == 2
    assert AuditEvent.objects.filter(thread=thread, action="thread_completed").count() == 1
