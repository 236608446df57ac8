"""What graphs surface and what reviewers answer: kinds of interrupt payloads and answer checks.

Answers are validated before any resume: a bad answer that reaches a node which then raises is
stored by LangGraph and replayed forever ("sticky"), so refusing it here is what keeps threads
from getting stuck.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import jsonschema
from django.conf import settings
from pydantic import ConfigDict, TypeAdapter

# bytes become base64 text, so one undecodable byte string cannot flatten a whole payload.
_ANY = TypeAdapter(Any, config=ConfigDict(ser_json_bytes="base64"))
# The checkpointer's serialiser refuses integers outside this range (and would fail the run).
_INT_RANGE = (-(2**63), 2**64 - 1)


class Kind(StrEnum):
    QUESTION = "question"  # a plain string: answered with text
    HITL = "hitl"  # LangChain HumanInTheLoopMiddleware, batched: {"action_requests", ...}
    ASSISTANCE = "assistance"  # the tutorials' human_assistance tool: {"query"} → {"data"}
    JSON = "json"  # anything else: rendered readably, answered with text or JSON


class AnswerError(ValueError):
    """An answer the desk refuses; the message is shown to the reviewer as is."""


def to_json(value: Any) -> Any:
    """A JSON-safe copy of a value from a graph (tuples become lists, objects their fields)."""
    try:
        return _ANY.dump_python(value, mode="json", fallback=repr)
    except Exception:  # a value pydantic cannot walk at all
        return repr(value)


def kind_of(value: Any) -> Kind:
    if isinstance(value, str):
        return Kind.QUESTION
    if (
        isinstance(value, dict)
        and isinstance(value.get("action_requests"), list)
        and isinstance(value.get("review_configs"), list)
    ):
        return Kind.HITL
    if isinstance(value, dict) and set(value) == {"query"}:
        return Kind.ASSISTANCE
    return Kind.JSON


def hitl_actions(value: dict[str, Any]) -> list[dict[str, Any]]:
    """Each action request with the decisions its review config allows."""
    configs = {
        c.get("action_name"): c.get("allowed_decisions") or []
        for c in value.get("review_configs", [])
        if isinstance(c, dict)
    }
    actions = []
    for request in value.get("action_requests", []):
        request = request if isinstance(request, dict) else {}
        name = request.get("name", "")
        actions.append(
            {
                "name": name,
                "args": request.get("args", {}),
                "description": request.get("description", ""),
                "allowed": configs.get(name) or ["approve", "edit", "reject", "respond"],
            }
        )
    return actions


def parse_json(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise AnswerError(
            f"That is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    except ValueError as exc:  # e.g. a number too long for Python to convert
        raise AnswerError(f"That is not valid JSON: {exc}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def storable_size(value: Any, *, what: str = "answer") -> int:
    """Bytes of the value as JSON; refuse what the database or the checkpointer cannot store."""
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise AnswerError(f"The {what} cannot be stored as JSON: {exc}.") from None
    _check_ints(value, what)
    return len(encoded)


def _check_ints(value: Any, what: str) -> None:
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
        elif isinstance(current, int) and not _INT_RANGE[0] <= current <= _INT_RANGE[1]:
            raise AnswerError(f"The {what} has an integer too large to store (over 64 bits).")


def answer_validate(*, value: Any, response_schema: dict[str, Any] | None, answer: Any) -> Any:
    """Return the answer if the graph can safely receive it, else raise AnswerError."""
    size = storable_size(answer)
    if size > settings.REVIEWDESK_MAX_ANSWER_BYTES:
        raise AnswerError(
            f"The answer is too large ({size} bytes; the limit is "
            f"{settings.REVIEWDESK_MAX_ANSWER_BYTES})."
        )
    if response_schema:
        try:
            jsonschema.validate(answer, response_schema)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "the answer"
            raise AnswerError(f"{where}: {exc.message}") from None
        except jsonschema.SchemaError:
            pass  # the graph's schema is broken; fall through to the checks below
    kind = kind_of(value)
    if kind is Kind.HITL:
        _hitl_validate(value, answer)
    elif kind is Kind.ASSISTANCE and not (
        isinstance(answer, dict) and isinstance(answer.get("data"), str)
    ):
        # human_assistance reads answer["data"]: anything else would raise and stick.
        raise AnswerError('This question expects {"data": "your reply"}.')
    return answer


def _hitl_validate(value: dict[str, Any], answer: Any) -> None:
    actions = hitl_actions(value)
    decisions = answer.get("decisions") if isinstance(answer, dict) else None
    if not isinstance(decisions, list):
        raise AnswerError('The answer must be {"decisions": [...]}, one decision per action.')
    if len(decisions) != len(actions):
        raise AnswerError(f"Expected {len(actions)} decision(s), got {len(decisions)}.")
    for n, (action, decision) in enumerate(zip(actions, decisions, strict=True), start=1):
        kind = decision.get("type") if isinstance(decision, dict) else None
        if kind not in action["allowed"]:
            allowed = ", ".join(action["allowed"])
            raise AnswerError(f"Decision {n} ({action['name']}): choose one of {allowed}.")
        if kind == "edit":
            edited = decision.get("edited_action")
            if not (
                isinstance(edited, dict)
                and isinstance(edited.get("name"), str)
                and isinstance(edited.get("args"), dict)
            ):
                raise AnswerError(
                    f"Decision {n} ({action['name']}): an edit needs the edited arguments "
                    "as a JSON object."
                )
        if kind in {"reject", "respond"}:
            message = decision.get("message")
            if kind == "respond" and not (isinstance(message, str) and message.strip()):
                raise AnswerError(f"Decision {n} ({action['name']}): a response needs a message.")
            if message is not None and not isinstance(message, str):
                raise AnswerError(f"Decision {n} ({action['name']}): the message must be text.")


def summary(value: Any, limit: int = 140) -> str:
    """One line that tells a reviewer what is being asked."""
    text: Any
    if isinstance(value, str):
        text = value
    elif kind_of(value) is Kind.HITL:
        names = ", ".join(a["name"] for a in hitl_actions(value))
        text = f"Approve tool call: {names}"
    elif isinstance(value, dict):
        text = next(
            (value[k] for k in ("question", "query", "description", "message") if k in value),
            json.dumps(value, ensure_ascii=False),
        )
    else:
        text = json.dumps(value, ensure_ascii=False)
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
