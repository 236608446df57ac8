"""Hostile JSON at every entry point: deep nesting, NUL characters, null inputs, deep values.

Each entry point (the answer form, the HITL edited arguments, the thread start form, the
startrun and answer commands, the services they call) refuses clearly and changes nothing, on
SQLite and on PostgreSQL alike (NUL used to pass on SQLite and be a 500 on PostgreSQL).
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from reviewdesk.engine import registry, runs
from reviewdesk.models import AuditEvent, ReviewItem, Thread
from reviewdesk.payloads import AnswerError, summary
from reviewdesk.services import items as item_services
from reviewdesk.services import threads as thread_services
from tests.factories import ReviewItemFactory
from tests.support import pending, start

TOO_DEEP = "That JSON is nested too deeply: at most 100 levels of lists and objects."
NUL = "contains a NUL character (\\u0000), which cannot be stored"


def nested_text(depth: int, leaf: str = "1") -> str:
    """JSON text nesting `depth` objects and lists alternately (json.dumps would recurse)."""
    opening = "".join('{"a": ' if n % 2 == 0 else "[" for n in range(depth))
    closing = "".join("}" if n % 2 == 0 else "]" for n in reversed(range(depth)))
    return opening + leaf + closing


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for n in reversed(range(depth)):
        value = {"a": value} if n % 2 == 0 else [value]
    return value


# What used to get through, and what it did: a RecursionError (a 500, a traceback), a later
# failure of the run inside the checkpointer, a DataError on PostgreSQL.
HOSTILE_ANSWERS = {
    "1000-levels": (nested_text(1000), TOO_DEEP),
    "300-levels": (nested_text(300), TOO_DEEP),
    "nul-in-a-string": ('{"note": "a\\u0000b"}', NUL),
    "nul-in-a-key": ('{"a\\u0000": 1}', NUL),
}
HOSTILE_INPUTS = {**HOSTILE_ANSWERS, "null": ("null", "The input cannot be null")}


@pytest.fixture(autouse=True)
def _test_settings(settings: Any) -> None:
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def asked(graph: str, staff: Any) -> ReviewItem:
    return pending(start(graph, registry.graph_specs()[graph].example_input, staff))[0]


def assert_unanswered(item: ReviewItem) -> None:
    item.refresh_from_db()
    assert (item.status, item.answer, item.answered_by) == (ReviewItem.Status.PENDING, None, None)
    assert item.thread.status == Thread.Status.INTERRUPTED
    assert not AuditEvent.objects.filter(item=item, action="item_answered").exists()


def assert_no_thread_started() -> None:
    assert not Thread.objects.exists()
    assert not AuditEvent.objects.exists()


def command(*args: str) -> str:
    with pytest.raises(CommandError) as excinfo:
        call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())
    return str(excinfo.value)


# --- the answer form --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "error"), HOSTILE_ANSWERS.values(), ids=HOSTILE_ANSWERS.keys())
def test_answer_form_refuses_hostile_json(
    client: Client, reviewer: Any, staff: Any, text: str, error: str
) -> None:
    item = asked("age", staff)
    client.force_login(reviewer)
    response = client.post(f"/items/{item.pk}/answer/", {"mode": "json", "answer": text})
    assert response.status_code == 422
    assert error in response.content.decode()
    assert_unanswered(item)


def test_answer_form_refuses_a_nul_typed_as_text(client: Client, reviewer: Any) -> None:
    item = ReviewItemFactory()
    client.force_login(reviewer)
    response = client.post(f"/items/{item.pk}/answer/", {"mode": "text", "answer": "a\x00b"})
    assert response.status_code == 422
    assert "Null characters are not allowed." in response.content.decode()
    assert_unanswered(item)


def structured_tool_call() -> Any:
    """A HITL request whose tool takes a JSON object: an edit gives a JSON box for it."""
    return ReviewItemFactory(
        value={
            "action_requests": [{"name": "store", "args": {"payload": {"a": 1}}}],
            "review_configs": [{"action_name": "store", "allowed_decisions": ["edit"]}],
        }
    )


@pytest.mark.parametrize(("text", "error"), HOSTILE_ANSWERS.values(), ids=HOSTILE_ANSWERS.keys())
def test_hitl_edited_arguments_refuse_hostile_json(
    client: Client, reviewer: Any, staff: Any, text: str, error: str
) -> None:
    item = structured_tool_call()
    client.force_login(reviewer)
    data = {"decision_0": "edit", "a0__payload": text, "message_0": ""}
    response = client.post(f"/items/{item.pk}/answer/", data)
    assert response.status_code == 422
    assert error.replace("That JSON", "") in response.content.decode()
    assert_unanswered(item)


def test_hitl_arguments_just_under_the_limit_are_refused_once_wrapped_in_the_decision(
    client: Client, reviewer: Any, staff: Any
) -> None:
    """{"decisions": [{"edited_action": {"args": …}}]} adds 4 levels: the whole answer counts."""
    item = structured_tool_call()
    client.force_login(reviewer)
    data = {"decision_0": "edit", "a0__payload": nested_text(99), "message_0": ""}
    response = client.post(f"/items/{item.pk}/answer/", data)
    assert response.status_code == 422
    assert "The answer is nested too deeply: at most 100 levels" in response.content.decode()
    assert_unanswered(item)


# --- the thread start form --------------------------------------------------------------------


@pytest.mark.parametrize(("text", "error"), HOSTILE_INPUTS.values(), ids=HOSTILE_INPUTS.keys())
def test_thread_start_form_refuses_hostile_json(
    client: Client, staff: Any, text: str, error: str
) -> None:
    client.force_login(staff)
    response = client.post("/threads/new/", {"graph": "age", "input": text})
    assert response.status_code == 422
    assert error in response.content.decode()
    assert_no_thread_started()


# --- the commands -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "error"), HOSTILE_INPUTS.values(), ids=HOSTILE_INPUTS.keys())
def test_startrun_refuses_hostile_json(queue: Any, text: str, error: str) -> None:
    assert error in command("startrun", "age", "--input", text)
    assert_no_thread_started()


@pytest.mark.parametrize(("text", "error"), HOSTILE_ANSWERS.values(), ids=HOSTILE_ANSWERS.keys())
def test_answer_command_refuses_hostile_json(
    reviewer: Any, staff: Any, text: str, error: str
) -> None:
    item = asked("age", staff)
    assert error in command("answer", str(item.pk), "--json", text, "--user", "rita")
    assert_unanswered(item)


# --- the services (for callers that hand them Python values) ------------------------------------

HOSTILE_VALUES = {
    "5000-levels": (nested(5000), "nested too deeply"),
    "101-levels": (nested(101), "nested too deeply"),
    "nul": ({"note": "a\x00b"}, NUL),
    "nul-in-a-list": (["ok", ["a\x00"]], NUL),
}


@pytest.mark.parametrize(("value", "error"), HOSTILE_VALUES.values(), ids=HOSTILE_VALUES.keys())
def test_thread_start_service_refuses_hostile_values(queue: Any, value: Any, error: str) -> None:
    with pytest.raises(AnswerError) as excinfo:
        thread_services.thread_start(graph="age", input=value)
    assert error in str(excinfo.value)
    assert_no_thread_started()


def test_thread_start_service_refuses_a_null_input(queue: Any) -> None:
    with pytest.raises(AnswerError) as excinfo:
        thread_services.thread_start(graph="age", input=None)
    assert str(excinfo.value) == "The input cannot be null; start with an object such as {}."
    assert_no_thread_started()


@pytest.mark.parametrize(("value", "error"), HOSTILE_VALUES.values(), ids=HOSTILE_VALUES.keys())
def test_answer_service_refuses_hostile_values(
    reviewer: Any, staff: Any, value: Any, error: str
) -> None:
    item = asked("age", staff)
    with pytest.raises(AnswerError) as excinfo:
        item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer=value)
    assert error in str(excinfo.value)
    assert_unanswered(item)


# --- the limit sits below the checkpointer's own -----------------------------------------------


def test_the_checkpoint_serialiser_fails_past_255_levels() -> None:
    """The limit the depth check guards: if LangGraph lowers it, the default must move too."""
    serde = JsonPlusSerializer()
    serde.loads_typed(serde.dumps_typed(nested(255)))
    with pytest.raises(TypeError, match="Recursion limit reached"):
        serde.dumps_typed(nested(256))


def test_input_and_answer_at_the_limit_go_through_the_real_checkpointer(
    reviewer: Any, staff: Any
) -> None:
    """100 levels (the default limit) are stored, resumed and kept in state by LangGraph."""
    thread = start("brittle", {"answer": nested(99)}, staff)
    assert thread.status == Thread.Status.INTERRUPTED
    [item] = pending(thread)
    answer = nested(100, leaf="deep")
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer=answer)
    runs.thread_advance(thread_id=thread.pk)
    thread.refresh_from_db()
    assert (thread.status, thread.error) == (Thread.Status.COMPLETED, "")
    state = registry.graph_get("brittle").get_state(thread.langgraph_config).values
    assert state["answer"] == answer


def test_the_limit_is_a_setting(reviewer: Any, staff: Any, settings: Any) -> None:
    settings.REVIEWDESK_MAX_JSON_DEPTH = 3
    item = asked("age", staff)
    with pytest.raises(AnswerError, match="at most 3 levels"):
        item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer=[[[[1]]]])
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer=[[[1]]])


# --- deep values surfaced by graphs -------------------------------------------------------------


def test_an_item_with_a_deeply_nested_value_renders_and_can_be_answered(
    client: Client, reviewer: Any
) -> None:
    """120 levels used to exhaust the stack in the recursive {% include %}: a 500 page."""
    item = ReviewItemFactory(value=nested(120, leaf="<b>bottom</b>"))
    client.force_login(reviewer)
    response = client.get(f"/items/{item.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    # Eight levels as nested HTML, the rest as raw JSON inside the eighth.
    assert html.count('<dl class="value-map">') == 4
    assert html.count('<ol class="value-list">') == 4
    assert '<li><pre class="json">{&quot;a&quot;: [{&quot;a&quot;: [' in html
    assert "&lt;b&gt;bottom&lt;/b&gt;" in html
    assert "<b>bottom</b>" not in html
    assert client.get("/").status_code == 200  # the queue row's summary too
    assert summary(item.value).startswith('{"a": [{"a": [')

    response = client.post(f"/items/{item.pk}/answer/", {"mode": "json", "answer": "1"})
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.ANSWERED


def test_a_thread_page_with_a_deep_input_renders(client: Client, staff: Any) -> None:
    thread = thread_services.thread_start(graph="brittle", input={"answer": nested(99)})
    client.force_login(staff)
    response = client.get(f"/threads/{thread.pk}/")
    assert response.status_code == 200
    assert json.dumps(nested(3))[:20].replace('"', "&quot;") in response.content.decode()


def test_commands_refuse_a_nul_in_the_username(reviewer: Any, staff: Any) -> None:
    """PostgreSQL cannot even look such a name up: a clear refusal, nothing changed."""
    item = asked("age", staff)
    assert "NUL" in command("answer", str(item.pk), "--json", '"40"', "--user", "ri\x00ta")
    assert_unanswered(item)
    before = Thread.objects.count()
    assert "NUL" in command("startrun", "age", "--input", "{}", "--user", "st\x00ella")
    assert Thread.objects.count() == before


def test_to_json_survives_objects_that_cannot_even_be_repred() -> None:
    from reviewdesk.payloads import to_json

    class Deep:
        def __repr__(self) -> str:
            raise RecursionError("maximum recursion depth exceeded")

    assert to_json(Deep()) == "<Deep that cannot be shown>"
