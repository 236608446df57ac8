"""Services against real graphs and the real checkpointer; the worker is called directly."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from langgraph.types import Command

from reviewdesk.engine import reconcile, registry, runs
from reviewdesk.models import AuditEvent, ReviewItem, Thread
from reviewdesk.payloads import AnswerError
from reviewdesk.services import items as item_services
from reviewdesk.services import threads as thread_services
from tests.support import pending, start


def answer(item: ReviewItem, reviewer: Any, value: Any) -> Thread:
    """Answer through the service, then run the resume the answer enqueued."""
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer=value)
    runs.thread_advance(thread_id=item.thread_id)
    item.thread.refresh_from_db()
    return item.thread


def state(thread: Thread) -> dict[str, Any]:
    return registry.graph_get(thread.graph).get_state(thread.langgraph_config).values


def test_start_records_the_thread_and_audits(staff: Any) -> None:
    thread = thread_services.thread_start(graph="age", input={"name": "Ada"}, user=staff)
    assert thread.status == Thread.Status.QUEUED
    assert thread.started_by == staff
    assert AuditEvent.objects.filter(thread=thread, action="thread_started").count() == 1


def test_start_refuses_unknown_graph(staff: Any) -> None:
    with pytest.raises(registry.UnknownGraph):
        thread_services.thread_start(graph="nope", input={}, user=staff)
    assert not Thread.objects.exists()


def test_first_run_mirrors_the_interrupt_into_one_item(staff: Any) -> None:
    thread = start("age", {"name": "Ada"}, staff)
    assert thread.status == Thread.Status.INTERRUPTED
    [item] = pending(thread)
    interrupt = registry.graph_get("age").get_state(thread.langgraph_config).interrupts[0]
    assert item.interrupt_id == interrupt.id
    assert item.value == "What is your age?"
    assert item.node == "ask_age"
    assert AuditEvent.objects.filter(item=item, action="item_created").exists()


def test_duplicate_delivery_changes_nothing(staff: Any) -> None:
    thread = start("age", {"name": "Ada"}, staff)
    assert runs.thread_advance(thread_id=thread.pk) == "nothing to do"
    assert runs.thread_advance(thread_id=thread.pk) == "nothing to do"
    assert thread.items.count() == 1


def test_answer_resumes_and_completes(staff: Any, reviewer: Any) -> None:
    thread = start("age", {"name": "Ada"}, staff)
    [item] = pending(thread)
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer="42")
    item.refresh_from_db()
    thread.refresh_from_db()
    assert (item.status, item.answered_by, thread.status) == ("answered", reviewer, "queued")

    assert runs.thread_advance(thread_id=thread.pk) == "resume"
    item.refresh_from_db()
    thread.refresh_from_db()
    assert item.status == ReviewItem.Status.APPLIED and item.applied_at is not None
    assert thread.status == Thread.Status.COMPLETED and thread.finished_at is not None
    assert state(thread)["age"] == 42
    actions = list(AuditEvent.objects.filter(thread=thread).values_list("action", flat=True))
    assert actions == [
        "thread_started",
        "item_created",
        "item_answered",
        "item_applied",
        "thread_completed",
    ]


def test_the_resume_records_who_decided_in_checkpoint_metadata(staff: Any, reviewer: Any) -> None:
    thread = start("age", {"name": "Ada"}, staff)
    answer(pending(thread)[0], reviewer, 30)
    graph = registry.graph_get("age")
    metadata = [s.metadata for s in graph.get_state_history(thread.langgraph_config)]
    assert any(m.get("reviewdesk_answered_by") == "rita" for m in metadata)


def test_invalid_age_is_asked_again_with_a_new_item(staff: Any, reviewer: Any) -> None:
    thread = start("age", {"name": "Ada"}, staff)
    [first] = pending(thread)
    thread = answer(first, reviewer, "abc")
    first.refresh_from_db()
    [second] = pending(thread)
    assert first.status == ReviewItem.Status.APPLIED
    assert second.interrupt_id != first.interrupt_id
    assert "'abc' is not a valid age" in second.value
    assert answer(second, reviewer, 7).status == Thread.Status.COMPLETED


def test_parallel_branches_answered_one_by_one_publish_once(staff: Any, reviewer: Any) -> None:
    thread = start("parallel_approval", {"topic": "launch"}, staff)
    legal, brand = pending(thread)
    assert legal.interrupt_id != brand.interrupt_id

    thread = answer(legal, reviewer, {"approved": True})
    assert thread.status == Thread.Status.INTERRUPTED
    # The sibling re-ran and asked again with the same id: still one open item, the same row.
    assert pending(thread) == [brand]
    assert thread.items.count() == 2

    thread = answer(brand, reviewer, {"approved": True, "comment": "ok"})
    assert thread.status == Thread.Status.COMPLETED
    assert len(state(thread)["published"]) == 1


def test_parallel_answers_are_batched_into_one_resume(
    staff: Any, reviewer: Any, other_reviewer: Any
) -> None:
    thread = start("parallel_approval", {"topic": "launch"}, staff)
    legal, brand = pending(thread)
    # The graph declares its answer shape (REVIEW_FORMS): {"approved": bool, "comment"?}.
    item_services.review_item_answer(item_id=legal.pk, reviewer=reviewer, answer={"approved": True})
    item_services.review_item_answer(
        item_id=brand.pk, reviewer=other_reviewer, answer={"approved": True, "comment": "ok"}
    )
    assert runs.thread_advance(thread_id=thread.pk) == "resume"
    thread.refresh_from_db()
    assert thread.status == Thread.Status.COMPLETED
    assert len(state(thread)["published"]) == 1
    assert set(thread.items.values_list("status", flat=True)) == {"applied"}
    assert runs.thread_advance(thread_id=thread.pk) == "nothing to do"


def test_chatbot_gets_the_reply_as_data(staff: Any, reviewer: Any) -> None:
    from graphs.chatbot import EXAMPLE_INPUT

    thread = start("chatbot", EXAMPLE_INPUT, staff)
    [item] = pending(thread)
    assert set(item.value) == {"query"}
    with pytest.raises(AnswerError):
        item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer={"foo": 1})
    thread = answer(item, reviewer, {"data": "Use LangGraph."})
    assert thread.status == Thread.Status.COMPLETED
    assert "Use LangGraph." in state(thread)["messages"][-1].content


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        ({"type": "approve"}, "Email sent to alice@example.com"),
        (
            {
                "type": "edit",
                "edited_action": {
                    "name": "send_email",
                    "args": {"to": "bob@example.com", "subject": "Hi", "body": "Hello"},
                },
            },
            "bob@example.com",
        ),
        ({"type": "reject", "message": "Not now."}, "Not now."),
        ({"type": "respond", "message": "Call her instead."}, "Call her instead."),
    ],
)
def test_agent_decisions(
    staff: Any, reviewer: Any, decision: dict[str, Any], expected: str
) -> None:
    from graphs.agent import EXAMPLE_INPUT

    thread = start("agent", EXAMPLE_INPUT, staff)
    [item] = pending(thread)
    thread = answer(item, reviewer, {"decisions": [decision]})
    assert thread.status == Thread.Status.COMPLETED
    assert expected in str(state(thread)["messages"][-1].content)


def test_agent_refuses_a_wrong_number_of_decisions(staff: Any, reviewer: Any) -> None:
    from graphs.agent import EXAMPLE_INPUT

    thread = start("agent", EXAMPLE_INPUT, staff)
    [item] = pending(thread)
    with pytest.raises(AnswerError, match="Expected 1 decision"):
        item_services.review_item_answer(
            item_id=item.pk, reviewer=reviewer, answer={"decisions": [{"type": "approve"}] * 2}
        )
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.PENDING


def test_exactly_one_decision_counts(staff: Any, reviewer: Any, other_reviewer: Any) -> None:
    thread = start("age", {"name": "Ada"}, staff)
    [item] = pending(thread)
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer="40")
    with pytest.raises(item_services.AlreadyDecided, match="already answered by rita"):
        item_services.review_item_answer(item_id=item.pk, reviewer=other_reviewer, answer="41")
    item.refresh_from_db()
    assert item.answer == "40" and item.answered_by == reviewer
    assert AuditEvent.objects.filter(action="item_answered").count() == 1


def test_reviewers_answer_only_their_queues(staff: Any, outsider: Any) -> None:
    thread = start("age", {"name": "Ada"}, staff)
    [item] = pending(thread)
    with pytest.raises(PermissionDenied):
        item_services.review_item_answer(item_id=item.pk, reviewer=outsider, answer="40")
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.PENDING


def test_a_sticky_bad_answer_fails_the_thread_and_retry_asks_again(
    staff: Any, reviewer: Any
) -> None:
    thread = start("brittle", {}, staff)
    [first] = pending(thread)
    thread = answer(first, reviewer, "boom")
    assert thread.status == Thread.Status.FAILED
    assert "refused the answer 'boom'" in thread.error
    assert "ValueError" in thread.traceback
    assert not pending(thread)

    # Without the retry's cleanup LangGraph would replay "boom" forever.
    thread_services.thread_retry(thread_id=thread.pk, user=staff)
    assert runs.thread_advance(thread_id=thread.pk) == "retry"
    thread.refresh_from_db()
    [second] = pending(thread)
    assert thread.status == Thread.Status.INTERRUPTED
    assert second.interrupt_id != first.interrupt_id
    assert answer(second, reviewer, "fine").status == Thread.Status.COMPLETED
    assert state(thread)["answer"] == "fine"


def test_retry_refuses_threads_that_did_not_fail(staff: Any) -> None:
    thread = start("age", {"name": "Ada"}, staff)
    with pytest.raises(ValueError, match="Only failed threads"):
        thread_services.thread_retry(thread_id=thread.pk, user=staff)


def test_answers_to_a_failed_thread_are_refused(staff: Any, reviewer: Any) -> None:
    thread = start("age", {"name": "Ada"}, staff)
    [item] = pending(thread)
    Thread.objects.filter(pk=thread.pk).update(status=Thread.Status.CANCELLED)
    with pytest.raises(AnswerError, match="cancelled"):
        item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer="40")


def test_recovery_after_a_resume_whose_mirror_was_lost(staff: Any, reviewer: Any) -> None:
    """A worker died after LangGraph checkpointed the resume but before the desk committed."""
    thread = start("age", {"name": "Ada"}, staff)
    [item] = pending(thread)
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer="33")
    graph = registry.graph_get("age")
    graph.invoke(
        Command(resume={item.interrupt_id: "33"}), thread.langgraph_config, durability="sync"
    )
    Thread.objects.filter(pk=thread.pk).update(status=Thread.Status.RUNNING)

    assert runs.thread_advance(thread_id=thread.pk) == "record"
    item.refresh_from_db()
    thread.refresh_from_db()
    assert item.status == ReviewItem.Status.APPLIED
    assert thread.status == Thread.Status.COMPLETED
    assert state(thread)["age"] == 33
    assert AuditEvent.objects.filter(item=item, action="item_applied").get().data == {
        "recovered": True
    }


def test_recovery_of_a_thread_left_running_reasks_with_the_same_id(staff: Any) -> None:
    thread = start("parallel_approval", {"topic": "launch"}, staff)
    ids = sorted(i.interrupt_id for i in pending(thread))
    Thread.objects.filter(pk=thread.pk).update(status=Thread.Status.RUNNING)
    assert runs.thread_advance(thread_id=thread.pk) == "record"
    thread.refresh_from_db()
    assert thread.status == Thread.Status.INTERRUPTED
    assert sorted(i.interrupt_id for i in pending(thread)) == ids
    assert thread.items.count() == 2


def test_a_run_that_keeps_dying_is_failed_after_max_attempts(staff: Any, settings: Any) -> None:
    thread = thread_services.thread_start(graph="age", input={"name": "Ada"}, user=staff)
    Thread.objects.filter(pk=thread.pk).update(
        status=Thread.Status.RUNNING, attempts=settings.REVIEWDESK_MAX_ATTEMPTS
    )
    assert runs.thread_advance(thread_id=thread.pk) == "gave up"
    thread.refresh_from_db()
    assert thread.status == Thread.Status.FAILED
    assert "Gave up after" in thread.error


def test_reconciler_picks_stale_threads_and_unapplied_answers(
    staff: Any, reviewer: Any, settings: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    settings.REVIEWDESK_STALE_AFTER = 30
    old = timezone.now() - timedelta(minutes=5)
    stuck = thread_services.thread_start(graph="age", input={"name": "A"}, user=staff)
    waiting = start("age", {"name": "B"}, staff)
    answered = start("age", {"name": "C"}, staff)
    item_services.review_item_answer(item_id=pending(answered)[0].pk, reviewer=reviewer, answer="5")
    fresh = thread_services.thread_start(graph="age", input={"name": "D"}, user=staff)

    Thread.objects.filter(pk__in=[stuck.pk, waiting.pk, answered.pk]).update(updated_at=old)
    ReviewItem.objects.filter(thread=answered).update(answered_at=old)

    ids = reconcile.threads_reconcile()
    assert set(ids) == {str(stuck.pk), str(answered.pk)}
    assert fresh.pk not in ids
    assert AuditEvent.objects.filter(action="thread_reenqueued").count() == 2
    # Touched: the next sweep leaves them alone until they are stale again.
    assert reconcile.threads_reconcile() == []


def test_a_thread_whose_graph_was_unregistered_fails_clearly(staff: Any) -> None:
    thread = thread_services.thread_start(graph="age", input={}, user=staff)
    Thread.objects.filter(pk=thread.pk).update(graph="removed_graph")
    assert runs.thread_advance(thread_id=thread.pk) == "failed"
    thread.refresh_from_db()
    assert thread.status == Thread.Status.FAILED
    assert "'removed_graph' is no longer registered" in thread.error


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_at_the_same_instant_one_wins(
    staff: Any, reviewer: Any, other_reviewer: Any
) -> None:
    """Real concurrency: two threads, two database connections, one item."""
    import threading

    from django.db import connection

    [item] = pending(start("age", {"name": "Ada"}, staff))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def decide(user: Any, value: str) -> None:
        barrier.wait()
        try:
            item_services.review_item_answer(item_id=item.pk, reviewer=user, answer=value)
            outcomes.append("won")
        except item_services.AlreadyDecided:
            outcomes.append("told")
        finally:
            connection.close()

    workers = [
        threading.Thread(target=decide, args=(reviewer, "40")),
        threading.Thread(target=decide, args=(other_reviewer, "41")),
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(outcomes) == ["told", "won"]
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.ANSWERED
    assert AuditEvent.objects.filter(item=item, action="item_answered").count() == 1
