"""LangChain Agent Inbox's ``HumanInterrupt`` (``langgraph.prebuilt.interrupt``).

The graph calls ``interrupt([{"action_request": {"action", "args"}, "config": {"allow_accept",
"allow_edit", "allow_respond", "allow_ignore"}, "description"}])[0]`` and reads a list of
``{"type": "accept" | "edit" | "response" | "ignore", "args": ...}``: None for accept and
ignore, the reply text for a response, ``{"action", "args"}`` for an edit.
"""

from __future__ import annotations

from typing import Any

from reviewdesk.payloads import AnswerError, json_text
from reviewdesk.payloads import hitl as hitl_convention

_ALLOW = (
    ("accept", "allow_accept"),
    ("edit", "allow_edit"),
    ("response", "allow_respond"),
    ("ignore", "allow_ignore"),
)


def recognise(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) >= 1
        and all(
            isinstance(v, dict)
            and isinstance(v.get("action_request"), dict)
            and isinstance(v.get("config"), dict)
            for v in value
        )
    )


def actions(value: Any) -> list[dict[str, Any]]:
    found = []
    for request in value if isinstance(value, list) else []:
        action = request.get("action_request") or {}
        config = request.get("config") or {}
        name = action.get("action", "")
        found.append(
            {
                "name": name if isinstance(name, str) else json_text(name, limit=200),
                "args": action.get("args") if isinstance(action.get("args"), dict) else {},
                "description": request.get("description")
                if isinstance(request.get("description"), str)
                else "",
                "allowed": [kind for kind, key in _ALLOW if config.get(key)] or ["accept"],
            }
        )
    return found


def validate(value: Any, answer: Any) -> None:
    requests = actions(value)
    if not isinstance(answer, list) or len(answer) != len(requests):
        raise AnswerError(
            f"The answer must be a list of {len(requests)} response(s): "
            '[{"type": ..., "args": ...}].'
        )
    for n, (request, response) in enumerate(zip(requests, answer, strict=True), start=1):
        kind = response.get("type") if isinstance(response, dict) else None
        if kind not in request["allowed"]:
            allowed = ", ".join(request["allowed"])
            raise AnswerError(f"Response {n} ({request['name']}): choose one of {allowed}.")
        args = response.get("args")
        if kind == "response" and not (isinstance(args, str) and args.strip()):
            raise AnswerError(f"Response {n} ({request['name']}): a response needs its text.")
        if kind == "edit" and not (
            isinstance(args, dict) and isinstance(args.get("args"), dict) and "action" in args
        ):
            raise AnswerError(
                f'Response {n} ({request["name"]}): an edit sends {{"action", "args": {{...}}}}.'
            )


class AgentInboxForm(hitl_convention.ActionCardsForm):
    """Accept / edit / respond / ignore, as each request's config allows."""

    LABELS = {"accept": "Accept", "edit": "Edit", "response": "Respond", "ignore": "Ignore"}
    EXPLAIN = {
        "accept": "The graph goes on with the action as shown.",
        "edit": "The graph goes on with your arguments instead.",
        "response": "The graph receives your reply as text instead of running the action.",
        "ignore": "The graph is told you ignored the request.",
    }
    MESSAGE_DECISIONS = ("response",)
    MESSAGE_REQUIRED = ("response",)

    def actions_of(self, value: Any, response_schema: Any) -> list[dict[str, Any]]:
        return actions(value)

    def decision(
        self, action: dict[str, Any], kind: str, args: dict[str, Any], message: str
    ) -> dict[str, Any]:
        if kind == "edit":
            return {"type": "edit", "args": {"action": action["name"], "args": args}}
        if kind == "response":
            return {"type": "response", "args": message}
        return {"type": kind, "args": None}

    def answer(self, decisions: list[dict[str, Any]]) -> Any:
        return decisions
