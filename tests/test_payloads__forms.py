"""Schema → form, and every convention's form: what a reviewer fills in is what the graph gets."""

from __future__ import annotations

from typing import Any

import pytest

from reviewdesk.engine import runs
from reviewdesk.models import ReviewItem
from reviewdesk.payloads import AnswerError, agent_inbox, approval, conventions, hitl, schema
from reviewdesk.services import items as item_services
from tests.factories import ReviewItemFactory
from tests.graphs_for_tests import ORDER_SCHEMA
from tests.support import pending, start

ORDER_OK = {
    "f__quantity": "3",
    "f__speed": "1",
    "f__gift": "false",
    "f__note": "Ring twice",
    "f__address__city": "Lyon",
    "f__payment__variant": "1",
    "f__payment__v1__days": "30",
}


def order_form(data: dict[str, str]) -> schema.SchemaForm:
    return schema.SchemaForm(data, schema=ORDER_SCHEMA)


# --- schema → form --------------------------------------------------------------------------------


def test_every_kind_of_property_becomes_a_typed_field() -> None:
    form = schema.SchemaForm(schema=ORDER_SCHEMA)
    fields = form.fields
    assert type(fields["f__quantity"]).__name__ == "IntegerField"
    assert [label for _, label in fields["f__speed"].choices] == ["—", "standard", "express"]
    assert fields["f__speed"].initial == "0"  # the schema's default
    assert [v for v, _ in fields["f__gift"].choices] == ["true", "false"]  # required: no blank
    assert type(fields["f__address__city"]).__name__ == "CharField"
    assert [label for _, label in fields["f__payment__variant"].choices] == ["Card", "Invoice"]
    assert {"f__payment__v0__last4", "f__payment__v1__days"} <= set(fields)
    assert "f__payment__v0__method" not in fields  # a const is not asked, it is sent
    # Descriptions are help text (markdown, rendered sanitised by the template).
    [quantity] = [n for n in form.nodes() if n.name == "f__quantity"]
    assert quantity.help == "How many to **ship**."
    assert quantity.required is True


def test_a_valid_submission_builds_the_typed_value() -> None:
    form = order_form(ORDER_OK)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["value"] == {
        "quantity": 3,
        "speed": "express",
        "gift": False,
        "note": "Ring twice",
        "address": {"city": "Lyon"},
        "payment": {"method": "invoice", "days": 30},
    }


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"f__quantity": "0"}, "f__quantity", "0 is less than the minimum of 1"),
        ({"f__quantity": ""}, "f__quantity", "This field is required."),
        ({"f__quantity": "two"}, "f__quantity", "Enter a whole number."),
        ({"f__address__city": ""}, "f__address__city", "This field is required."),
        # The chosen variant's own rule, not "is not valid under any of the given schemas".
        (
            {"f__payment__variant": "0", "f__payment__v0__last4": ""},
            "f__payment__v0__last4",
            "This field is required.",
        ),
        ({"f__gift": ""}, "f__gift", "This field is required."),
    ],
)
def test_errors_land_next_to_their_field(changes: dict[str, str], field: str, message: str) -> None:
    form = order_form({**ORDER_OK, **changes})
    assert not form.is_valid()
    assert message in form.errors[field]


def test_arrays_nullable_refs_and_unknown_parts() -> None:
    spec = {
        "$defs": {"Tag": {"enum": ["a", "b", "c"]}},
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}},
            "scores": {"type": "array", "items": {"type": "integer"}},
            "maybe": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "blob": {"type": "object", "additionalProperties": True},
        },
    }
    form = schema.SchemaForm(
        {"f__tags": ["0", "2"], "f__scores": "1\n 2\n", "f__maybe": "x", "f__blob": '{"k": [1]}'},
        schema=spec,
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["value"] == {
        "tags": ["a", "c"],
        "scores": [1, 2],
        "maybe": "x",
        "blob": {"k": [1]},
    }
    bad = schema.SchemaForm({"f__scores": "1\nx", "f__blob": "{nope"}, schema=spec)
    assert not bad.is_valid()
    assert "Each line must be a integer." in bad.errors["f__scores"]
    assert "not valid JSON" in bad.errors["f__blob"][0]


def test_scalar_and_broken_schemas() -> None:
    form = schema.SchemaForm({"f": "7"}, schema={"type": "integer", "maximum": 5})
    assert not form.is_valid()
    assert "7 is greater than the maximum of 5" in form.errors["f"]
    assert schema.renderable({"type": "object", "properties": {"a": {"type": "string"}}})
    assert not schema.renderable({"type": "object"})  # only a JSON box: the generic form does it
    assert not schema.renderable("nonsense")


# --- approvals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "approve", "reject"),
    [
        ({"type": "boolean"}, True, False),
        ({"enum": ["no", "yes"]}, "yes", "no"),
        ({"enum": ["ship", "hold"]}, "ship", "hold"),
        (
            {
                "type": "object",
                "properties": {"approved": {"type": "boolean"}, "comment": {"type": "string"}},
                "required": ["approved"],
            },
            {"approved": True},
            {"approved": False},
        ),
    ],
)
def test_yes_no_schemas_are_approvals(spec: dict[str, Any], approve: Any, reject: Any) -> None:
    found = approval.approval_of(spec)
    assert found is not None
    assert (found.approve, found.reject) == (approve, reject)


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "string"},
        {"enum": ["a", "b", "c"]},
        {
            "type": "object",
            "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer"}},
            "required": ["ok"],
        },
        ORDER_SCHEMA,
    ],
)
def test_other_schemas_are_not_approvals(spec: dict[str, Any]) -> None:
    assert approval.approval_of(spec) is None


def test_approval_form_sends_the_comment_with_the_decision() -> None:
    declared = {
        "type": "object",
        "properties": {"approved": {"type": "boolean"}, "comment": {"type": "string"}},
        "required": ["approved"],
    }
    form = approval.ApprovalForm(
        {"decision": "reject", "extra_comment": " Too early "}, schema=declared
    )
    assert form.is_valid()
    assert form.cleaned_data["value"] == {"approved": False, "comment": "Too early"}
    assert not approval.ApprovalForm({}, schema=declared).is_valid()


@pytest.mark.django_db
def test_the_example_approval_graph_declares_its_answer(staff: Any) -> None:
    thread = start("parallel_approval", {"topic": "x"}, staff)
    item = pending(thread)[0]
    convention = conventions.for_item(item)
    assert convention.kind == "approval"
    assert "Approve or Reject" in convention.accepts
    with pytest.raises(AnswerError, match="not of type 'object'"):
        conventions.answer_check(item, "maybe")


# --- HITL -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_hitl_edit_fields_follow_the_tools_schema_and_are_checked(staff: Any) -> None:
    thread = start(
        "agent", {"messages": [{"role": "user", "content": "Email bob@x.org to say hi"}]}
    )
    item = pending(thread)[0]
    convention = conventions.for_item(item)
    form_class, kwargs = convention.form_class, convention.form_kwargs
    assert form_class is hitl.HitlForm
    blank = form_class(**kwargs)
    assert blank.fields["decision_0"].initial is None  # nothing preselected
    assert blank.fields["a0__body"].widget.__class__.__name__ == "Textarea"  # text, not JSON
    assert blank.fields["a0__to"].initial == "bob@x.org"
    edited = {"decision_0": "edit", "a0__to": "eve@x.org", "a0__subject": "Hi", "a0__body": "Yo"}
    form = form_class(edited, **kwargs)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["value"] == {
        "decisions": [
            {
                "type": "edit",
                "edited_action": {
                    "name": "send_email",
                    "args": {"to": "eve@x.org", "subject": "Hi", "body": "Yo"},
                },
            }
        ]
    }
    # A required argument left out is refused next to its field, before any resume.
    form = form_class({**edited, "a0__body": ""}, **kwargs)
    assert not form.is_valid()
    assert form.errors["a0__body"] == ["This field is required."]
    # And by the service for anyone not using the form (scripts, commands).
    args = {"to": "eve@x.org", "subject": "Hi"}
    answer = {
        "decisions": [{"type": "edit", "edited_action": {"name": "send_email", "args": args}}]
    }
    with pytest.raises(
        AnswerError, match="edited arguments do not fit the tool: body: This field is required"
    ):
        item_services.review_item_answer(item_id=item.pk, reviewer=staff, answer=answer)


@pytest.mark.django_db
def test_changed_arguments_under_approve_are_refused(staff: Any) -> None:
    thread = start(
        "agent", {"messages": [{"role": "user", "content": "Email bob@x.org to say hi"}]}
    )
    item = pending(thread)[0]
    convention = conventions.for_item(item)
    original = hitl.hitl_actions(item.value)[0]["args"]
    fields = {f"a0__{k}": v for k, v in original.items()}
    changed = convention.form_class(
        {"decision_0": "approve", **fields, "a0__to": "eve@x.org"}, **convention.form_kwargs
    )
    assert not changed.is_valid()
    assert "choose Edit to send your changes" in changed.errors["decision_0"][0]
    same = convention.form_class({"decision_0": "approve", **fields}, **convention.form_kwargs)
    assert same.is_valid(), same.errors
    assert same.cleaned_data["value"] == {"decisions": [{"type": "approve"}]}


@pytest.mark.django_db
def test_per_call_hitl_reads_decisions_and_arguments_from_its_response_schema(staff: Any) -> None:
    thread = start("per_call_agent", {"messages": [{"role": "user", "content": "refund A-1"}]})
    item = pending(thread)[0]
    convention = conventions.for_item(item)
    assert convention.form_class is hitl.HitlCallForm
    form = convention.form_class(**convention.form_kwargs)
    assert [v for v, _ in form.fields["decision_0"].choices] == ["approve", "edit", "reject"]
    assert type(form.fields["a0__amount"]).__name__ == "IntegerField"
    bound = convention.form_class(
        {"decision_0": "edit", "a0__order": "A-1", "a0__amount": "12", "a0__reason": "late"},
        **convention.form_kwargs,
    )
    assert bound.is_valid(), bound.errors
    answer = bound.cleaned_data["value"]
    assert answer == {
        "type": "edit",
        "edited_action": {
            "name": "refund",
            "args": {"order": "A-1", "amount": 12, "reason": "late"},
        },
    }
    item_services.review_item_answer(item_id=item.pk, reviewer=staff, answer=answer)
    runs.thread_advance(thread_id=thread.pk)
    thread.refresh_from_db()
    assert thread.status == "completed"


@pytest.mark.django_db
def test_agent_inbox_offers_what_its_config_allows(staff: Any) -> None:
    thread = start("agent_inbox", {})
    item = pending(thread)[0]
    convention = conventions.for_item(item)
    assert convention.form_class is agent_inbox.AgentInboxForm
    form = convention.form_class(**convention.form_kwargs)
    assert [v for v, _ in form.fields["decision_0"].choices] == [
        "accept",
        "edit",
        "response",
        "ignore",
    ]
    responded = convention.form_class(
        {"decision_0": "response", "message_0": "Use ls -la"}, **convention.form_kwargs
    )
    assert responded.is_valid(), responded.errors
    assert responded.cleaned_data["value"] == [{"type": "response", "args": "Use ls -la"}]
    edit = convention.form_class(
        {"decision_0": "edit", "a0__command": "ls -la", "a0__cwd": "/tmp"},
        **convention.form_kwargs,
    )
    assert edit.is_valid(), edit.errors
    answer = edit.cleaned_data["value"]
    assert answer == [
        {
            "type": "edit",
            "args": {"action": "run_shell", "args": {"command": "ls -la", "cwd": "/tmp"}},
        }
    ]
    with pytest.raises(AnswerError, match="choose one of"):
        conventions.answer_check(item, [{"type": "launch", "args": None}])
    item_services.review_item_answer(item_id=item.pk, reviewer=staff, answer=answer)
    runs.thread_advance(thread_id=thread.pk)
    from reviewdesk.engine import registry

    values = registry.graph_get("agent_inbox").get_state(thread.langgraph_config).values
    assert values["answer"] == answer[0]


@pytest.mark.django_db
def test_malformed_payloads_fall_back_to_the_generic_form(reviewer: Any) -> None:
    for value in (
        [{"action_request": "x"}],
        {"action_requests": "nope"},
        {"type": "tool_approval"},
        None,
        3.5,
    ):
        item = ReviewItemFactory(value=value)
        assert conventions.for_item(item).kind == "json"
    item = ReviewItemFactory(value="Why?", response_schema={"type": "object"})
    assert conventions.for_item(item).kind == "question"
    assert ReviewItem.objects.count() == 6
