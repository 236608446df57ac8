"""The engine against real graphs and the real checkpointer: every graph runs as written.

Async nodes, async-only tools, static breakpoints, typed state and values the database cannot
store as they are; the worker is called directly (``runs.thread_advance``), as a task would.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from django.db import connection

from reviewdesk.engine import locks, registry, runs
from reviewdesk.models import AuditEvent, ReviewItem, Thread
from reviewdesk.payloads import AnswerError
from reviewdesk.services import items as item_services
from reviewdesk.services import threads as thread_services
from tests import graphs_for_tests
from tests.graphs_for_tests import Note, Order
from tests.support import pending, start, wait_for


def answer(item: ReviewItem, reviewer: Any, value: Any) -> Thread:
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer=value)
    runs.thread_advance(thread_id=item.thread_id)
    item.thread.refresh_from_db()
    return item.thread


def values(thread: Thread) -> dict[str, Any]:
    return registry.graph_get(thread.graph).get_state(thread.langgraph_config).values


# --- async graphs ------------------------------------------------------------------------------


def test_a_graph_with_async_nodes_runs_to_completion(staff: Any, reviewer: Any) -> None:
    assert registry.runs_async("async_nodes")
    thread = start("async_nodes", {}, staff)
    assert thread.status == Thread.Status.INTERRUPTED, thread.error
    [item] = pending(thread)
    assert item.value == "An async node asks: continue?"
    assert item.node == "async_ask"

    thread = answer(item, reviewer, "yes")
    assert thread.status == Thread.Status.COMPLETED, thread.error
    assert values(thread) == {"answer": "yes", "done": True}


def test_an_async_only_tool_found_at_run_time_switches_the_graph_to_async(
    staff: Any, reviewer: Any
) -> None:
    """Nothing in the graph's structure says async; the sync run's error does."""
    thread = start("async_tool", {"text": "hello"}, staff)
    assert thread.status == Thread.Status.INTERRUPTED, thread.error
    [item] = pending(thread)
    assert item.value == "The tool said HELLO. Fine?"
    assert registry.runs_async("async_tool")
    assert answer(item, reviewer, "fine").status == Thread.Status.COMPLETED


# --- static breakpoints ------------------------------------------------------------------------


def test_a_breakpoint_before_a_node_pauses_as_an_item_and_continues_once(
    staff: Any, reviewer: Any
) -> None:
    thread = start("breakpoint_before", {}, staff)
    assert thread.status == Thread.Status.INTERRUPTED, thread.error
    [item] = pending(thread)
    assert item.kind == ReviewItem.Kind.BREAKPOINT
    assert item.value == {"breakpoint": "before", "nodes": ["publish"]}
    assert item.node == "publish"
    assert values(thread).get("published") in (None, [])

    # Duplicate deliveries before anyone answers: nothing passes the breakpoint.
    assert runs.thread_advance(thread_id=thread.pk) == "nothing to do"
    assert values(thread).get("published") in (None, [])

    thread = answer(item, reviewer, {"action": "continue"})
    assert thread.status == Thread.Status.COMPLETED, thread.error
    assert values(thread)["published"] == ["first draft"]
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.APPLIED
    assert runs.thread_advance(thread_id=thread.pk) == "nothing to do"
    assert values(thread)["published"] == ["first draft"]


def test_a_breakpoint_after_a_node_continues_with_a_state_edit(staff: Any, reviewer: Any) -> None:
    thread = start("breakpoint_after", {}, staff)
    [item] = pending(thread)
    assert item.value == {"breakpoint": "after", "nodes": ["write"]}

    thread = answer(
        item, reviewer, {"action": "continue", "state_update": {"draft": "edited", "edits": ["x"]}}
    )
    assert thread.status == Thread.Status.COMPLETED, thread.error
    assert values(thread)["published"] == ["edited"]
    assert values(thread)["edits"] == ["x"]


def test_a_state_edit_is_applied_once_when_the_continue_is_replanned(
    staff: Any, reviewer: Any
) -> None:
    """A worker died after storing the edit and before the run: the edit is not repeated."""
    thread = start("breakpoint_before", {}, staff)
    [item] = pending(thread)
    update = {"edits": ["once"]}
    item_services.review_item_answer(
        item_id=item.pk, reviewer=reviewer, answer={"action": "continue", "state_update": update}
    )
    graph = registry.graph_get("breakpoint_before")
    stamped = {**thread.langgraph_config, "metadata": {runs.BREAKPOINT_EDIT_KEY: str(item.pk)}}
    graph.update_state(stamped, update)  # what the dead worker got done
    Thread.objects.filter(pk=thread.pk).update(status=Thread.Status.RUNNING)

    assert runs.thread_advance(thread_id=thread.pk) == "continue"
    thread.refresh_from_db()
    assert thread.status == Thread.Status.COMPLETED
    assert values(thread)["edits"] == ["once"]
    assert values(thread)["published"] == ["first draft"]


def test_recovery_never_passes_a_breakpoint_nobody_approved(staff: Any) -> None:
    """A worker died after the run reached the breakpoint and before the desk recorded it."""
    thread = thread_services.thread_start(graph="breakpoint_before", input={}, user=staff)
    registry.graph_get("breakpoint_before").invoke({}, thread.langgraph_config, durability="sync")
    Thread.objects.filter(pk=thread.pk).update(status=Thread.Status.RUNNING)

    assert runs.thread_advance(thread_id=thread.pk) == "record"
    thread.refresh_from_db()
    assert thread.status == Thread.Status.INTERRUPTED
    [item] = pending(thread)
    assert item.kind == ReviewItem.Kind.BREAKPOINT
    assert values(thread).get("published") in (None, [])


def test_a_state_edit_naming_unknown_keys_is_refused(staff: Any, reviewer: Any) -> None:
    thread = start("breakpoint_before", {}, staff)
    [item] = pending(thread)
    with pytest.raises(AnswerError, match="no key 'nope'"):
        item_services.review_item_answer(
            item_id=item.pk,
            reviewer=reviewer,
            answer={"action": "continue", "state_update": {"nope": 1}},
        )
    with pytest.raises(AnswerError):
        item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer="go on")
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.PENDING


# --- checkpoint serialisation --------------------------------------------------------------------


def test_pydantic_and_dataclass_state_round_trips_without_warnings(
    staff: Any, reviewer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    thread = start("typed_state", {}, staff)
    assert thread.status == Thread.Status.INTERRUPTED, thread.error
    [item] = pending(thread)
    assert item.value == "Ship 3 x A-1 (fragile)?"
    state = values(thread)
    assert state["order"] == Order(sku="A-1", quantity=3)
    assert state["note"] == Note("fragile")
    assert answer(item, reviewer, "yes").status == Thread.Status.COMPLETED
    assert not [r for r in caplog.records if "deserializ" in r.getMessage().lower()]


def test_types_outside_the_schema_are_not_rebuilt_unless_allowed(settings: Any) -> None:
    """The allow-list is real: an unlisted class comes back as data, a listed one as itself."""
    from reviewdesk.engine import checkpoint

    blob = checkpoint.serializer().dumps_typed(Note("x"))
    assert not isinstance(checkpoint.serializer().loads_typed(blob), Note)
    settings.REVIEWDESK_CHECKPOINT_ALLOWED_TYPES = ["tests.graphs_for_tests.Note"]
    assert checkpoint.serializer().loads_typed(blob) == Note("x")


# --- values the database cannot store as they are -------------------------------------------------


def test_a_surfaced_value_with_nul_characters_becomes_a_readable_item(staff: Any) -> None:
    thread = start("nul_value", {}, staff)
    assert thread.status == Thread.Status.INTERRUPTED, thread.error
    [item] = pending(thread)
    assert item.value == {"question": "Keep\ufffdthis?", "key\ufffd": ["a\ufffdb"]}
    created = AuditEvent.objects.get(item=item, action="item_created")
    assert created.data["value"]["question"] == "Keep\ufffdthis?"


# --- the run mutex -----------------------------------------------------------------------------


def test_a_delivery_finding_the_thread_running_returns_without_counting(staff: Any) -> None:
    thread = thread_services.thread_start(graph="age", input={"name": "Ada"}, user=staff)
    mutex = locks.mutex()
    assert mutex.try_acquire(str(thread.pk))
    try:
        for _ in range(6):
            assert runs.thread_advance(thread_id=thread.pk) == "busy"
    finally:
        mutex.release(str(thread.pk))
    thread.refresh_from_db()
    assert (thread.status, thread.attempts) == (Thread.Status.QUEUED, 0)
    assert runs.thread_advance(thread_id=thread.pk) == "start"


@pytest.mark.django_db(transaction=True)
def test_an_answer_never_waits_for_a_running_graph_and_the_run_picks_it_up(
    staff: Any, reviewer: Any, other_reviewer: Any
) -> None:
    """While a resume is inside a node, the other question is answered, and applied next."""
    graphs_for_tests.GATE.clear()
    thread = start("gated", {}, staff)
    first, second = sorted(pending(thread), key=lambda i: i.value)
    item_services.review_item_answer(item_id=first.pk, reviewer=reviewer, answer="one")

    results: list[str] = []

    def work() -> None:
        try:
            results.append(runs.thread_advance(thread_id=thread.pk))
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    try:
        wait_for(
            lambda: Thread.objects.get(pk=thread.pk).status == Thread.Status.RUNNING,
            what="the resume to start",
        )
        # The graph is inside a node: this must not wait for it.
        item_services.review_item_answer(item_id=second.pk, reviewer=other_reviewer, answer="two")
        assert worker.is_alive()
        assert Thread.objects.get(pk=thread.pk).status == Thread.Status.RUNNING
    finally:
        graphs_for_tests.GATE.set()
        worker.join(60)
    assert results == ["resume"]
    thread.refresh_from_db()
    assert thread.status == Thread.Status.COMPLETED, thread.error
    assert values(thread) == {"first": "one", "second": "two", "done": True}
    statuses = set(thread.items.values_list("status", flat=True))
    assert statuses == {ReviewItem.Status.APPLIED}


@pytest.mark.django_db(transaction=True)
def test_six_deliveries_arriving_together_are_harmless(staff: Any, reviewer: Any) -> None:
    """Red team: each copy counted an attempt before waiting; the sixth failed the thread."""
    thread = start("age", {"name": "Ada"}, staff)
    [item] = pending(thread)
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer="52")
    barrier = threading.Barrier(6)
    results: list[str] = []

    def deliver() -> None:
        try:
            barrier.wait()
            results.append(runs.thread_advance(thread_id=thread.pk))
        finally:
            connection.close()

    copies = [threading.Thread(target=deliver) for _ in range(6)]
    for copy in copies:
        copy.start()
    for copy in copies:
        copy.join(60)
    thread.refresh_from_db()
    assert thread.status == Thread.Status.COMPLETED, thread.error
    assert results.count("resume") == 1
    assert set(results) <= {"resume", "busy", "nothing to do"}
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.APPLIED
    assert values(thread)["age"] == 52


def test_each_run_is_recorded_with_its_outcome_and_a_dead_one_as_lost(
    staff: Any, reviewer: Any
) -> None:
    from django.utils import timezone

    from reviewdesk.models import Run

    thread = start("age", {"name": "Ada"}, staff)
    [item] = pending(thread)
    # A worker took the resume and died: the attempt was counted, the run never finished.
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer="12")
    Thread.objects.filter(pk=thread.pk).update(status=Thread.Status.RUNNING, attempts=1)
    Run.objects.create(thread=thread, kind="resume", started_at=timezone.now())

    assert runs.thread_advance(thread_id=thread.pk) == "resume"
    rows = list(thread.runs.values_list("kind", "outcome"))
    assert rows == [("start", "interrupted"), ("resume", "lost"), ("resume", "completed")]
    finished = thread.runs.last()
    assert finished is not None and finished.duration is not None and finished.duration >= 0
    assert finished.worker and finished.items == str(item.pk)


def test_a_task_leaves_no_query_log_behind(staff: Any, settings: Any) -> None:
    """With DEBUG on, a worker that runs tasks for days must not keep every SQL statement."""
    from django.db import connection as db

    from reviewdesk import tasks

    settings.DEBUG = True
    thread = thread_services.thread_start(graph="age", input={"name": "Ada"}, user=staff)
    db.queries_log.clear()
    tasks.thread_advance.apply(args=[str(thread.pk)])  # runs the task and its signals here
    assert len(db.queries_log) == 0
    thread.refresh_from_db()
    assert thread.status == Thread.Status.INTERRUPTED
