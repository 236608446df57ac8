"""Staff actions on a thread's history, on a real graph and checkpointer: replay, edit, cancel,
retry, delete; the same services the thread page and ``threadreplay`` use.
"""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command

from reviewdesk.engine import registry, runs
from reviewdesk.models import AuditEvent, ReviewItem, Thread
from reviewdesk.queries import history as history_queries
from reviewdesk.services import history
from reviewdesk.services import items as item_services
from tests.support import pending, start


def answer(item: ReviewItem, reviewer: Any, value: Any) -> Thread:
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer=value)
    runs.thread_advance(thread_id=item.thread_id)
    item.thread.refresh_from_db()
    return item.thread


def values(thread: Thread) -> dict[str, Any]:
    return registry.graph_get(thread.graph).get_state(thread.langgraph_config).values


def completed_survey(staff: Any, reviewer: Any) -> Thread:
    thread = start("survey", {}, staff)
    thread = answer(pending(thread)[0], reviewer, "Ada")
    thread = answer(pending(thread)[0], reviewer, "green")
    thread = answer(pending(thread)[0], reviewer, "yes")
    assert thread.status == Thread.Status.COMPLETED, thread.error
    return thread


def asked_entry(thread: Thread, node: str) -> dict[str, Any]:
    timeline = history_queries.thread_timeline(thread)
    return next(e for e in timeline if e["kind"] == "asked" and e["node"] == node)


def test_replay_from_a_past_checkpoint_asks_again_as_a_new_item_and_continues(
    staff: Any, reviewer: Any
) -> None:
    thread = completed_survey(staff, reviewer)
    old = asked_entry(thread, "ask_colour")
    old_item = ReviewItem.objects.get(pk=old["item"])

    history.thread_replay(
        thread_id=thread.pk, checkpoint_id=old["checkpoint_id"], user=staff, reason="typo"
    )
    runs.thread_advance(thread_id=thread.pk)
    thread.refresh_from_db()
    assert thread.status == Thread.Status.INTERRUPTED, thread.error
    [again] = pending(thread)
    assert again.pk != old_item.pk
    assert again.interrupt_id != old_item.interrupt_id
    assert again.repeats_id == old_item.pk
    assert again.value == "Favourite colour, Ada?"
    old_item.refresh_from_db()
    assert old_item.status == ReviewItem.Status.APPLIED  # the old decision stays on record

    thread = answer(again, reviewer, "blue")
    thread = answer(pending(thread)[0], reviewer, "yes")
    assert thread.status == Thread.Status.COMPLETED, thread.error
    assert values(thread)["summary"] == "Ada likes blue"

    timeline = history_queries.thread_timeline(thread)
    kinds = [e["kind"] for e in timeline]
    replayed = kinds.index("replayed")
    assert timeline[replayed]["by"] == staff.get_username()
    assert timeline[replayed]["reason"] == "typo"
    assert timeline[replayed]["checkpoint_id"] == old["checkpoint_id"]
    repeated = next(e for e in timeline if e["kind"] == "asked" and e["item"] == again.pk)
    assert repeated["repeats"] == old_item.pk
    assert kinds.index("asked", replayed) == timeline.index(repeated)
    # The steps the replay ran say who caused them.
    fork_steps = [e for e in timeline[replayed:] if e["kind"] == "step" and e["run"] == "replay"]
    assert fork_steps and all(e["by"] == staff.get_username() for e in fork_steps)
    # The fork copies the old checkpoint: no node ran, nothing of the old branch shows as written.
    assert (fork_steps[0]["node"], fork_steps[0]["writes"]) == ("(replay)", {})
    assert timeline[-1]["kind"] == "completed"


def test_replay_of_the_pending_question_supersedes_the_open_item(staff: Any, reviewer: Any) -> None:
    thread = start("survey", {}, staff)
    thread = answer(pending(thread)[0], reviewer, "Ada")
    [colour] = pending(thread)
    name = asked_entry(thread, "ask_name")

    history.thread_replay(
        thread_id=thread.pk, checkpoint_id=name["checkpoint_id"], user=staff, reason="start over"
    )
    runs.thread_advance(thread_id=thread.pk)
    thread.refresh_from_db()
    colour.refresh_from_db()
    assert colour.status == ReviewItem.Status.SUPERSEDED
    [again] = pending(thread)
    assert again.node == "ask_name" and again.repeats_id == name["item"]


def test_threadreplay_command_uses_the_same_service(staff: Any, reviewer: Any) -> None:
    thread = completed_survey(staff, reviewer)
    old = asked_entry(thread, "ask_confirm")
    out = StringIO()
    call_command(
        "threadreplay",
        str(thread.pk),
        "--checkpoint",
        old["checkpoint_id"],
        "--user",
        staff.username,
        "--reason",
        "re-confirm",
        stdout=out,
    )
    assert "queued to replay" in out.getvalue()
    runs.thread_advance(thread_id=thread.pk)
    [again] = pending(thread)
    assert again.repeats_id == old["item"]
    event = AuditEvent.objects.get(action="thread_replayed")
    assert event.actor == staff and event.data["reason"] == "re-confirm"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"checkpoint": "1f0-not-a-checkpoint"}, "has no checkpoint"),
        ({"user": "rita"}, "Only staff"),
        ({"reason": "  "}, "A reason is required"),
        ({"user": "nobody"}, "No active user"),
    ],
)
def test_threadreplay_refuses_clearly(
    staff: Any, reviewer: Any, change: dict[str, str], message: str
) -> None:
    thread = completed_survey(staff, reviewer)
    args = {
        "checkpoint": asked_entry(thread, "ask_name")["checkpoint_id"],
        "user": staff.username,
        "reason": "why not",
        **change,
    }
    with pytest.raises(CommandError, match=message):
        call_command(
            "threadreplay",
            str(thread.pk),
            *[part for key, value in args.items() for part in (f"--{key}", value)],
            stdout=StringIO(),
        )
    assert not AuditEvent.objects.filter(action="thread_replayed").exists()
    thread.refresh_from_db()
    assert thread.action == "" and thread.status == Thread.Status.COMPLETED


def test_a_checkpoint_of_another_thread_is_unknown(staff: Any, reviewer: Any) -> None:
    one = completed_survey(staff, reviewer)
    other = start("survey", {}, staff)
    foreign = asked_entry(one, "ask_name")["checkpoint_id"]
    with pytest.raises(history.Refused, match="has no checkpoint"):
        history.thread_replay(thread_id=other.pk, checkpoint_id=foreign, user=staff, reason="x")


def test_edit_state_and_continue_asks_again_and_shows_as_a_diff(staff: Any, reviewer: Any) -> None:
    thread = start("survey", {}, staff)
    thread = answer(pending(thread)[0], reviewer, "Ada")
    [colour] = pending(thread)

    history.thread_state_edit(
        thread_id=thread.pk, values={"name": "Grace"}, user=staff, reason="wrong name"
    )
    runs.thread_advance(thread_id=thread.pk)
    thread.refresh_from_db()
    colour.refresh_from_db()
    assert colour.status == ReviewItem.Status.SUPERSEDED
    [again] = pending(thread)
    assert again.value == "Favourite colour, Grace?"
    assert again.repeats_id == colour.pk

    timeline = history_queries.thread_timeline(thread)
    edited = next(e for e in timeline if e["kind"] == "state_edited")
    assert edited["by"] == staff.get_username() and edited["reason"] == "wrong name"
    step = next(e for e in timeline if e["kind"] == "step" and e["source"] == "update")
    assert step["by"] == staff.get_username()
    state = history_queries.thread_state_at(thread, step["checkpoint_id"])
    assert state is not None
    assert state["diff"] == [{"op": "replace", "path": "/name", "value": "Grace"}]
    assert state["values"]["name"] == "Grace" and state["previous"]["name"] == "Ada"


def test_edit_refuses_unknown_keys_and_non_staff(staff: Any, reviewer: Any) -> None:
    thread = start("survey", {}, staff)
    with pytest.raises(history.Refused, match="no key 'nope'"):
        history.thread_state_edit(thread_id=thread.pk, values={"nope": 1}, user=staff, reason="x")
    with pytest.raises(PermissionDenied):
        history.thread_state_edit(
            thread_id=thread.pk, values={"name": 1}, user=reviewer, reason="x"
        )


def test_cancel_withdraws_open_questions_and_never_runs_again(staff: Any, reviewer: Any) -> None:
    thread = start("survey", {}, staff)
    [item] = pending(thread)
    history.thread_cancel(thread_id=thread.pk, user=staff, reason="duplicate")
    thread.refresh_from_db()
    item.refresh_from_db()
    assert thread.status == Thread.Status.CANCELLED
    assert item.status == ReviewItem.Status.SUPERSEDED
    assert runs.thread_advance(thread_id=thread.pk) == "nothing to do"
    with pytest.raises(history.Refused):
        history.thread_cancel(thread_id=thread.pk, user=staff, reason="again")
    entry = history_queries.thread_timeline(thread)[-1]
    assert entry == {**entry, "kind": "cancelled", "by": "stella", "reason": "duplicate"}


def test_cancel_during_a_run_is_not_undone_by_the_run_ending(staff: Any, reviewer: Any) -> None:
    """The run's record phase finds the thread cancelled and leaves it so."""
    thread = start("survey", {}, staff)
    item_services.review_item_answer(item_id=pending(thread)[0].pk, reviewer=reviewer, answer="A")
    # What a cancel between the run's plan and its record looks like: the plan has run.
    Thread.objects.filter(pk=thread.pk).update(status=Thread.Status.RUNNING)
    history.thread_cancel(thread_id=thread.pk, user=staff, reason="stop")
    assert runs.thread_advance(thread_id=thread.pk) == "nothing to do"
    thread.refresh_from_db()
    assert thread.status == Thread.Status.CANCELLED


def test_retry_requires_a_reason_and_records_it(staff: Any, reviewer: Any) -> None:
    thread = start("brittle", {}, staff)
    thread = answer(pending(thread)[0], reviewer, "boom")
    assert thread.status == Thread.Status.FAILED
    with pytest.raises(history.Refused, match="reason"):
        history.thread_retry(thread_id=thread.pk, user=staff, reason="")
    with pytest.raises(PermissionDenied):
        history.thread_retry(thread_id=thread.pk, user=reviewer, reason="please")
    history.thread_retry(thread_id=thread.pk, user=staff, reason="fixed the node")
    runs.thread_advance(thread_id=thread.pk)
    thread.refresh_from_db()
    assert thread.status == Thread.Status.INTERRUPTED
    timeline = history_queries.thread_timeline(thread)
    failed = next(e for e in timeline if e["kind"] == "failed")
    assert "refused the answer" in failed["error"]
    retried = next(e for e in timeline if e["kind"] == "retried")
    assert retried["by"] == "stella" and retried["reason"] == "fixed the node"


def test_delete_needs_the_id_typed_and_keeps_the_audit_trail(staff: Any, reviewer: Any) -> None:
    thread = completed_survey(staff, reviewer)
    thread_id = str(thread.pk)
    graph = registry.graph_get("survey")
    with pytest.raises(history.Refused, match="Type the thread's id"):
        history.thread_delete(thread_id=thread_id, user=staff, reason="gdpr", confirm="yes")
    with pytest.raises(PermissionDenied):
        history.thread_delete(thread_id=thread_id, user=reviewer, reason="x", confirm=thread_id)
    audited = AuditEvent.objects.filter(thread_id=thread_id).count()

    history.thread_delete(thread_id=thread_id, user=staff, reason="gdpr", confirm=thread_id)
    assert not Thread.objects.filter(pk=thread_id).exists()
    assert not ReviewItem.objects.filter(thread_id=thread_id).exists()
    assert graph.get_state(thread.langgraph_config).created_at is None
    assert AuditEvent.objects.filter(thread=None).count() == audited + 1
    deleted = AuditEvent.objects.get(action="thread_deleted")
    assert deleted.data["thread_id"] == thread_id and deleted.data["reason"] == "gdpr"


def test_an_action_never_runs_beside_a_running_graph(staff: Any, reviewer: Any) -> None:
    """While a run holds the thread's mutex the action only waits on the thread row; the next
    run under the mutex carries it out."""
    from reviewdesk.engine import locks

    thread = start("survey", {}, staff)
    thread = answer(pending(thread)[0], reviewer, "Ada")
    name = asked_entry(thread, "ask_name")
    with locks.holding(str(thread.pk)) as held:
        assert held is not None  # a run in progress, as far as every worker can tell
        history.thread_replay(
            thread_id=thread.pk, checkpoint_id=name["checkpoint_id"], user=staff, reason="r"
        )
        with pytest.raises(history.Refused, match="already waiting"):
            history.thread_state_edit(
                thread_id=thread.pk, values={"name": "B"}, user=staff, reason="r"
            )
        assert runs.thread_advance(thread_id=thread.pk) == "busy"
        assert not thread.items.filter(repeats__isnull=False).exists()
    runs.thread_advance(thread_id=thread.pk)
    thread.refresh_from_db()
    assert thread.action == "" and thread.status == Thread.Status.INTERRUPTED
    [again] = pending(thread)
    assert again.repeats_id == name["item"]


def test_threadhistory_refuses_an_unknown_thread(db: None) -> None:
    with pytest.raises(CommandError, match="No thread"):
        call_command("threadhistory", "not-a-uuid", stdout=StringIO())
