"""Management commands: startrun, threadstatus and answer, in-process and once as real processes.

Their output is a contract for scripts: startrun's last line is the thread id, threadstatus prints
one JSON object, and a refused answer exits non-zero with the reason.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError

from reviewdesk.engine import registry, runs
from reviewdesk.models import AuditEvent, ReviewItem, Thread
from reviewdesk.services import items as item_services
from reviewdesk.services import threads as thread_services
from tests.factories import UserFactory

MANAGE = Path(django_settings.BASE_DIR) / "manage.py"


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    """The factories' users, without PBKDF2's ~0.2 s per user."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def run(*args: str) -> str:
    """Run a command in this process and return what it printed."""
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def refused(*args: str) -> str:
    """The CommandError message a command fails with (fails if it succeeds)."""
    with pytest.raises(CommandError) as excinfo:
        run(*args)
    return str(excinfo.value)


def interrupted(graph: str = "age", input: Any = None) -> Thread:
    """A thread of a real graph, run to its first question as the worker would."""
    thread = thread_services.thread_start(graph=graph, input=input or {"name": "Ada"})
    runs.thread_advance(thread_id=thread.pk)
    thread.refresh_from_db()
    return thread


def pending_item(thread: Thread) -> ReviewItem:
    return thread.items.get(status=ReviewItem.Status.PENDING)


def assert_unanswered(item: ReviewItem) -> None:
    item.refresh_from_db()
    assert (item.status, item.answer, item.answered_by) == (ReviewItem.Status.PENDING, None, None)
    assert not AuditEvent.objects.filter(item=item, action="item_answered").exists()


# --- startrun -----------------------------------------------------------------------------------


def test_startrun_prints_the_new_thread_id_last(queue: Any) -> None:
    out = run("startrun", "age", "--input", '{"name": "Ada"}')
    thread = Thread.objects.get(pk=UUID(out.splitlines()[-1]))
    assert (thread.graph, thread.input, thread.status) == ("age", {"name": "Ada"}, "queued")
    assert thread.started_by is None
    event = AuditEvent.objects.get(thread=thread, action="thread_started")
    assert event.actor_label == "command"


def test_startrun_defaults_to_an_empty_input_and_records_the_user(staff: Any) -> None:
    out = run("startrun", "age", "--user", "stella")
    thread = Thread.objects.get(pk=out.splitlines()[-1])
    assert (thread.input, thread.started_by) == ({}, staff)


def test_startrun_refuses_an_unknown_graph_and_lists_the_registered_ones(queue: Any) -> None:
    message = refused("startrun", "nope")
    assert message.startswith("No graph named 'nope'. Registered: ")
    for name in registry.graph_specs():
        assert name in message
    assert {"age", "chatbot", "agent", "parallel_approval", "brittle"} <= set(
        registry.graph_specs()
    )
    assert not Thread.objects.exists()


@pytest.mark.parametrize("text", ["{name: Ada}", "", "{'name': 'Ada'}"])
def test_startrun_refuses_input_that_is_not_json(queue: Any, text: str) -> None:
    assert refused("startrun", "age", "--input", text).startswith(
        "--input: That is not valid JSON: "
    )
    assert not Thread.objects.exists()


@pytest.mark.parametrize("text", ['{"threshold": NaN}', "1" * 5000], ids=["nan", "5000-digits"])
def test_startrun_refuses_input_the_desk_cannot_store(queue: Any, text: str) -> None:
    """Python's json.loads reads these; the database (NaN) or int() (5000 digits) does not."""
    assert refused("startrun", "age", "--input", text)
    assert not Thread.objects.exists()


def test_startrun_refuses_an_unknown_user(queue: Any) -> None:
    assert refused("startrun", "age", "--user", "nobody") == "No user named 'nobody'."
    assert not Thread.objects.exists()


def test_startrun_refuses_an_input_over_the_limit(queue: Any, settings: Any) -> None:
    settings.REVIEWDESK_MAX_INPUT_BYTES = 20
    message = refused("startrun", "age", "--input", json.dumps({"name": "A" * 50}))
    assert message.startswith("The input is too large")
    assert not Thread.objects.exists()


# --- threadstatus -------------------------------------------------------------------------------


def status_of(thread: Thread | str) -> dict[str, Any]:
    out = run("threadstatus", str(getattr(thread, "pk", thread)))
    assert len(out.strip().splitlines()) == 1  # one JSON object, one line
    return json.loads(out)


def test_threadstatus_of_an_interrupted_thread(queue: Any) -> None:
    thread = interrupted()
    item = pending_item(thread)
    assert status_of(thread) == {
        "thread": str(thread.pk),
        "status": "interrupted",
        "pending": [
            {"item": item.pk, "interrupt_id": item.interrupt_id, "value": "What is your age?"}
        ],
    }


def test_threadstatus_lists_every_pending_item_with_its_structured_value(queue: Any) -> None:
    thread = interrupted("parallel_approval", {"topic": "launch"})
    status = status_of(thread)
    assert set(status) == {"thread", "status", "pending"}
    assert [set(p) for p in status["pending"]] == [{"item", "interrupt_id", "value"}] * 2
    assert sorted(p["value"]["reviewer_role"] for p in status["pending"]) == ["brand", "legal"]
    assert [p["item"] for p in status["pending"]] == sorted(
        thread.items.values_list("pk", flat=True)
    )


def test_threadstatus_follows_the_thread_through_its_life(reviewer: Any) -> None:
    thread = thread_services.thread_start(graph="age", input={"name": "Ada"})
    assert status_of(thread) == {"thread": str(thread.pk), "status": "queued", "pending": []}

    runs.thread_advance(thread_id=thread.pk)
    item = pending_item(thread)
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer="42")
    # Answered but not yet applied: nothing is pending any more.
    assert status_of(thread)["status"] == "queued"
    assert status_of(thread)["pending"] == []

    runs.thread_advance(thread_id=thread.pk)
    assert status_of(thread) == {"thread": str(thread.pk), "status": "completed", "pending": []}


def test_threadstatus_of_a_failed_thread_gives_the_error(reviewer: Any) -> None:
    thread = interrupted("brittle", {})
    item = pending_item(thread)
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer="boom")
    runs.thread_advance(thread_id=thread.pk)
    status = status_of(thread)
    assert status["status"] == "failed"
    assert status["pending"] == []
    assert status["error"] == "ValueError: the node refused the answer 'boom'"


def test_threadstatus_words_are_the_thread_statuses(queue: Any) -> None:
    thread = interrupted()
    for word in Thread.Status.values:
        Thread.objects.filter(pk=thread.pk).update(status=word)
        assert status_of(thread)["status"] == word


@pytest.mark.parametrize("thread_id", [str(uuid4()), "not-a-uuid", ""])
def test_threadstatus_of_an_unknown_thread(db: None, thread_id: str) -> None:
    assert refused("threadstatus", thread_id) == f"No thread with id {thread_id!r}."


# --- answer -------------------------------------------------------------------------------------


def test_answer_as_a_reviewer(reviewer: Any) -> None:
    thread = interrupted()
    item = pending_item(thread)
    out = run("answer", str(item.pk), "--json", '"42"', "--user", "rita")
    assert out.strip() == f"Answered item {item.pk}; thread {thread.pk} queued to resume."
    item.refresh_from_db()
    thread.refresh_from_db()
    assert (item.status, item.answer, item.answered_by) == ("answered", "42", reviewer)
    assert thread.status == Thread.Status.QUEUED
    event = AuditEvent.objects.get(item=item, action="item_answered")
    assert (event.actor, event.data["answer"]) == (reviewer, "42")
    # The decision record (issue 8): how the reviewer was logged in, a hash of what they saw.
    assert event.data["via"].startswith("command")
    assert len(event.data["payload_hash"]) == 64
    # The graph takes it exactly as the web form's answer.
    runs.thread_advance(thread_id=thread.pk)
    thread.refresh_from_db()
    assert thread.status == Thread.Status.COMPLETED


def test_answer_is_validated_like_the_web_form(reviewer: Any) -> None:
    item = pending_item(interrupted("chatbot", registry.graph_specs()["chatbot"].example_input))
    message = refused("answer", str(item.pk), "--json", '"just text"', "--user", "rita")
    assert message == 'Refused: This question expects {"data": "your reply"}.'
    assert_unanswered(item)


def test_answer_refuses_json_it_cannot_parse(reviewer: Any) -> None:
    item = pending_item(interrupted())
    message = refused("answer", str(item.pk), "--json", "forty-two", "--user", "rita")
    assert message.startswith("--json: That is not valid JSON: ")
    assert_unanswered(item)


@pytest.mark.parametrize("text", ["NaN", "1" * 5000], ids=["nan", "5000-digits"])
def test_answer_refuses_json_the_desk_cannot_store(reviewer: Any, text: str) -> None:
    item = pending_item(interrupted())
    assert refused("answer", str(item.pk), "--json", text, "--user", "rita")
    assert_unanswered(item)


def test_answer_refuses_an_outsider(outsider: Any) -> None:
    item = pending_item(interrupted())
    message = refused("answer", str(item.pk), "--json", "42", "--user", "olga")
    assert message == "Refused: You are not a reviewer of this item's queue."
    assert_unanswered(item)


@pytest.mark.parametrize("username", ["nobody", "ivan"])
def test_answer_refuses_an_unknown_or_inactive_user(reviewer: Any, username: str) -> None:
    inactive = UserFactory(username="ivan", is_active=False)
    inactive.groups.set(reviewer.groups.all())
    item = pending_item(interrupted())
    message = refused("answer", str(item.pk), "--json", "42", "--user", username)
    assert message == f"No active user named {username!r}."
    assert_unanswered(item)


def test_answer_refuses_an_item_already_answered(reviewer: Any, other_reviewer: Any) -> None:
    item = pending_item(interrupted())
    run("answer", str(item.pk), "--json", "42", "--user", "rita")
    message = refused("answer", str(item.pk), "--json", "17", "--user", "oscar")
    assert message.startswith("Refused: This item was already answered by rita at ")
    assert message.endswith(". Your answer was not sent.")
    item.refresh_from_db()
    assert (item.answer, item.answered_by) == (42, reviewer)
    assert AuditEvent.objects.filter(item=item, action="item_answered").count() == 1


def test_answer_refuses_an_unknown_item(reviewer: Any) -> None:
    assert refused("answer", "999999", "--json", "42", "--user", "rita") == (
        "No review item 999999."
    )


# --- seeddemo -----------------------------------------------------------------------------------


def test_seeddemo_starts_demo_threads_only_for_graphs_with_an_example_input(db: None) -> None:
    specs = registry.graph_specs()
    # The test graphs define no EXAMPLE_INPUT: an empty input would fail at once.
    assert specs["slow"].example_input is None and specs["brittle"].example_input is None
    out = run("seeddemo")
    assert "Demo logins: reviewer / " in out
    started = {thread.graph: thread.input for thread in Thread.objects.all()}
    assert started == {
        name: spec.example_input for name, spec in specs.items() if spec.example_input is not None
    }
    assert {"age", "chatbot", "agent", "parallel_approval"} <= set(started)


# --- as real processes --------------------------------------------------------------------------


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        env=env,
        cwd=MANAGE.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_commands_as_processes_keep_their_output_contract(
    transactional_db: None, desk_env: dict[str, str], reviewer: Any, outsider: Any
) -> None:
    """startrun's last line is the id; a refused answer exits non-zero, the reason on stderr."""
    from reviewdesk.celery import app

    try:
        started = manage(desk_env, "startrun", "age", "--input", '{"name": "Ada"}')
        assert started.returncode == 0, started.stderr
        thread = Thread.objects.get(pk=UUID(started.stdout.splitlines()[-1]))
        assert (thread.graph, thread.input) == ("age", {"name": "Ada"})

        runs.thread_advance(thread_id=thread.pk)
        item = pending_item(thread)
        answered = manage(desk_env, "answer", str(item.pk), "--json", "42", "--user", "olga")
        assert answered.returncode != 0
        assert answered.stdout == ""
        assert answered.stderr.strip().splitlines()[-1] == (
            "CommandError: Refused: You are not a reviewer of this item's queue."
        )
        assert_unanswered(item)
    finally:
        app.control.purge()  # the resume tasks the processes enqueued on the test Redis DB
