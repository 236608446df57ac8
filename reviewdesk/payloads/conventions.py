"""Which convention an item follows, and so which form answers it and which checks apply.

First match wins: a breakpoint; what the graph's module declares for the node
(``REVIEW_FORMS``); HumanInTheLoopMiddleware batched and per call; Agent Inbox; an answer schema
with two outcomes (Approve / Reject); any other answer schema the generator can draw; the
``{"query"}`` → ``{"data"}`` convention; a plain string; anything else (readable value, text or
JSON answer). Unknown or malformed payloads always land on the last, never on an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.utils.module_loading import import_string

from reviewdesk import payloads
from reviewdesk.engine import registry
from reviewdesk.payloads import agent_inbox, approval, hitl, schema

log = logging.getLogger(__name__)


@dataclass
class Convention:
    kind: str  # what the item template draws: question, json, assistance, schema, approval, ...
    form_class: type
    form_kwargs: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] | None = None  # the answer schema the service checks
    template: str = ""  # a graph's own template for the surfaced value
    accepts: str = ""  # what answer it takes, in words


def declared(graph: str, node: str) -> dict[str, Any]:
    """The graph module's REVIEW_FORMS entry for the node (or for every node, "*")."""
    try:
        forms_of = registry.review_forms(graph)
    except Exception:  # a graph module that fails to import still gets its items answered
        log.warning("cannot read REVIEW_FORMS of graph %r", graph, exc_info=True)
        return {}
    entry = forms_of.get(node) or forms_of.get("*") or {}
    return entry if isinstance(entry, dict) else {}


def for_item(item: Any) -> Convention:
    from reviewdesk.models import ReviewItem

    if item.kind == ReviewItem.Kind.BREAKPOINT:
        from reviewdesk.forms import BreakpointForm

        return Convention(
            kind="breakpoint",
            form_class=BreakpointForm,
            schema=item.response_schema,
            accepts="Continue, optionally with a JSON object of state keys to change.",
        )
    return for_value(
        value=item.value,
        response_schema=item.response_schema,
        graph=item.thread.graph,
        node=item.node,
    )


def for_value(*, value: Any, response_schema: Any, graph: str, node: str) -> Convention:
    from reviewdesk.forms import AnswerForm

    entry = declared(graph, node)
    template = entry.get("template") if isinstance(entry.get("template"), str) else ""
    answer_schema = entry.get("schema") if isinstance(entry.get("schema"), dict) else None
    answer_schema = answer_schema or (
        response_schema if isinstance(response_schema, dict) else None
    )
    if isinstance(entry.get("form"), str):
        try:
            form_class = import_string(entry["form"].replace(":", "."))
        except ImportError:
            log.warning("REVIEW_FORMS of %r names a form that cannot be imported", graph)
        else:
            return Convention(
                kind="declared",
                form_class=form_class,
                form_kwargs={"value": value},
                schema=answer_schema,
                template=template,
                accepts=str(entry.get("accepts") or "The form below."),
            )
    kind = payloads.kind_of(value)
    if kind is payloads.Kind.HITL:
        return Convention(
            kind="hitl",
            form_class=hitl.HitlForm,
            form_kwargs={"value": value, "tool_schemas": registry.tool_schemas(graph)},
            schema=answer_schema,
            template=template,
            accepts="One decision per tool call, all sent together: "
            + "; ".join(f"{a['name']}: {', '.join(a['allowed'])}" for a in hitl.hitl_actions(value))
            + ".",
        )
    if kind is payloads.Kind.HITL_CALL:
        action = hitl.call_action(value, response_schema)
        return Convention(
            kind="hitl",
            form_class=hitl.HitlCallForm,
            form_kwargs={"value": value, "response_schema": response_schema},
            schema=answer_schema,
            template=template,
            accepts=f"One decision for {action['name']}: {', '.join(action['allowed'])}.",
        )
    if kind is payloads.Kind.AGENT_INBOX:
        return Convention(
            kind="hitl",
            form_class=agent_inbox.AgentInboxForm,
            form_kwargs={"value": value},
            schema=answer_schema,
            template=template,
            accepts="One response per request: "
            + "; ".join(
                f"{a['name']}: {', '.join(a['allowed'])}" for a in agent_inbox.actions(value)
            )
            + ".",
        )
    if answer_schema and approval.approval_of(answer_schema):
        return Convention(
            kind="approval",
            form_class=approval.ApprovalForm,
            form_kwargs={"value": value, "schema": answer_schema},
            schema=answer_schema,
            template=template,
            accepts="Approve or Reject"
            + (
                " (with an optional comment)."
                if approval.approval_of(answer_schema).extras
                else "."
            ),
        )
    if answer_schema and schema.renderable(answer_schema):
        return Convention(
            kind="schema",
            form_class=schema.SchemaForm,
            form_kwargs={"value": value, "schema": answer_schema},
            schema=answer_schema,
            template=template,
            accepts="An answer filling in the form below (checked against the graph's schema).",
        )
    accepts = {
        payloads.Kind.QUESTION: "Text (or, switched to JSON, any JSON value).",
        payloads.Kind.ASSISTANCE: 'Text: the graph receives it as {"data": "your text"}.',
    }.get(kind, "Text, or any JSON value (switch to JSON).")
    if answer_schema:
        accepts += " It must match the answer schema shown."
    return Convention(
        kind=str(kind) if kind in (payloads.Kind.QUESTION, payloads.Kind.ASSISTANCE) else "json",
        form_class=AnswerForm,
        form_kwargs={"value": value},
        schema=answer_schema,
        template=template,
        accepts=accepts,
    )


def answer_check(item: Any, answer: Any) -> Any:
    """Every check the item's convention puts on an answer; AnswerError says what is wrong."""
    convention = for_item(item)
    return payloads.answer_validate(
        value=item.value,
        response_schema=convention.schema,
        answer=answer,
        tool_schemas=registry.tool_schemas(item.thread.graph),
    )
