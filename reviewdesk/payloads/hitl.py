"""LangChain's HumanInTheLoopMiddleware: batched (one interrupt per model turn) and per call.

Batched, the value is ``{"action_requests": [{"name", "args", "description"}],
"review_configs": [{"action_name", "allowed_decisions"}]}`` and the answer ``{"decisions":
[...]}``, one per action in order. The middleware gives no schema, so the desk checks count,
shape and edited arguments (against the tool's own argument schema) itself: a bad answer would
otherwise reach the tool, fail, and leave the thread looking finished.

Per call (``interrupt_mode="per_call"``), the value is ``{"type": "tool_approval",
"tool_call_id", "name", "args", "description"}`` with a ``response_schema`` whose branches are
the allowed decisions, the edit branch carrying the tool's argument schema; the answer is one
decision.

The form shows one card per action; the decision is always an explicit choice (nothing is
preselected), edited arguments are typed fields, and arguments changed under a decision that
would not send them are refused rather than silently dropped.
"""

from __future__ import annotations

from typing import Any

from django import forms

from reviewdesk.payloads import AnswerError, json_text
from reviewdesk.payloads import schema as schema_convention

# What the model receives after each decision, in the middleware's own words.
EXPLAIN = {
    "approve": "The tool runs with the arguments shown.",
    "edit": (
        "The tool runs with your arguments instead; the model sees its result after a note "
        "that a reviewer edited the call."
    ),
    "reject": (
        "The tool does not run. The model receives an error result: “User rejected the tool "
        "call for `{name}` with reason: <your message>” (with no message: “… The tool was not "
        "executed. Do not retry this tool call unless the user explicitly requests it.”)."
    ),
    "respond": (
        "The tool does not run. The model receives your message as the tool's result, as if "
        "the tool had answered."
    ),
}
LABELS = {"approve": "Approve", "edit": "Edit", "reject": "Reject", "respond": "Respond"}


def recognise_call(value: Any) -> bool:
    """A per-call ``ToolApprovalRequest``."""
    return (
        isinstance(value, dict)
        and value.get("type") == "tool_approval"
        and isinstance(value.get("name"), str)
        and isinstance(value.get("args"), dict)
    )


def hitl_actions(value: dict[str, Any]) -> list[dict[str, Any]]:
    """Each action request with the decisions its review config allows."""
    # The value comes from a graph: names and descriptions are made text (a nested mapping there
    # would be unhashable as a key and unprintable at depth), and only known decisions count.
    configs = {
        c["action_name"]: [d for d in c.get("allowed_decisions") or [] if d in _DECISIONS]
        for c in value.get("review_configs", [])
        if isinstance(c, dict)
        and isinstance(c.get("action_name"), str)
        and isinstance(c.get("allowed_decisions") or [], list)
    }
    actions = []
    for request in value.get("action_requests", []):
        request = request if isinstance(request, dict) else {}
        name = _text(request.get("name", ""))
        actions.append(
            {
                "name": name,
                "args": request.get("args", {}),
                "description": _text(request.get("description", "")),
                "allowed": configs.get(name) or list(_DECISIONS),
            }
        )
    return actions


_DECISIONS = ("approve", "edit", "reject", "respond")


def _text(value: Any) -> str:
    """A string as is; anything else as (the start of) its JSON text."""
    return value if isinstance(value, str) else json_text(value, limit=1000)


def validate(value: dict[str, Any], answer: Any) -> None:
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


def call_action(value: dict[str, Any], response_schema: Any) -> dict[str, Any]:
    """The one action of a per-call request, with its allowed decisions and argument schema."""
    root = response_schema if isinstance(response_schema, dict) else {}
    branches = root.get("oneOf") or root.get("anyOf") or ([root] if root else [])
    allowed: list[str] = []
    args_schema: dict[str, Any] | None = None
    for branch in branches:
        branch = schema_convention.resolve(branch, root)
        properties = branch.get("properties") or {}
        kind = schema_convention._const_of(properties.get("type"))
        if kind in _DECISIONS and kind not in allowed:
            allowed.append(kind)
        if kind == "edit":
            edited = schema_convention.resolve(properties.get("edited_action"), root)
            found = schema_convention.resolve((edited.get("properties") or {}).get("args"), root)
            if found.get("properties"):
                args_schema = _with_defs(found, root)
    return {
        "name": _text(value.get("name", "")),
        "args": value.get("args", {}),
        "description": _text(value.get("description", "")),
        "allowed": allowed or list(_DECISIONS),
        "schema": args_schema,
    }


def _with_defs(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """A sub-schema that can still resolve the root's $defs on its own."""
    defs = {k: root[k] for k in ("$defs", "definitions") if k in root}
    return {**defs, **schema}


def schema_from_values(args: Any) -> dict[str, Any]:
    """An argument schema read off the values, for tools that publish none."""
    types = {str: "string", bool: "boolean", int: "integer", float: "number"}
    properties = {
        key: ({"type": types[type(v)]} if type(v) in types else {})
        for key, v in (args.items() if isinstance(args, dict) else [])
    }
    return {"type": "object", "properties": properties, "required": list(properties)}


def args_errors(args_schema: dict[str, Any] | None, args: Any) -> list[str]:
    """What is wrong with edited arguments under the tool's schema (empty: nothing)."""
    if not args_schema:
        return []
    found = []
    for path, message in schema_convention.errors_of(args_schema, args, {}):
        where = "/".join(map(str, path))
        found.append(f"{where}: {message}" if where else message)
    return found


def validate_edits(value: Any, answer: Any, tool_schemas: dict[str, dict[str, Any]]) -> None:
    """Edited arguments of a batched answer must fit their tool's schema, or the tool fails."""
    decisions = answer.get("decisions") if isinstance(answer, dict) else None
    for n, (action, decision) in enumerate(
        zip(hitl_actions(value), decisions or [], strict=False), start=1
    ):
        if not (isinstance(decision, dict) and decision.get("type") == "edit"):
            continue
        args = (decision.get("edited_action") or {}).get("args")
        problems = args_errors(tool_schemas.get(action["name"]), args)
        if problems:
            raise AnswerError(
                f"Decision {n} ({action['name']}): the edited arguments do not fit the tool: "
                + "; ".join(problems)
            )


def most_telling(action: dict[str, Any], limit: int = 3) -> str:
    """A tool call in a few words: its description, else its name and first text arguments."""
    if action.get("description"):
        return action["description"]
    args = action.get("args") if isinstance(action.get("args"), dict) else {}
    shown = [
        f"{k}: {v}" for k, v in args.items() if isinstance(v, str | int | float) and str(v).strip()
    ][:limit]
    return f"{action['name']}({', '.join(shown)})" if shown else action["name"]


class ActionCardsForm(forms.Form):
    """One card per action: an explicit decision, typed arguments for an edit, a message."""

    LABELS = LABELS
    EXPLAIN = EXPLAIN
    EDIT = "edit"
    MESSAGE_DECISIONS = ("reject", "respond")
    MESSAGE_REQUIRED = ("respond",)

    def __init__(
        self,
        *args: Any,
        value: Any = None,
        tool_schemas: dict[str, dict[str, Any]] | None = None,
        response_schema: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.value = value
        self.actions = self.actions_of(value, response_schema)
        self.trees = []
        for n, action in enumerate(self.actions):
            schema = action.get("schema") or (tool_schemas or {}).get(action["name"])
            action["schema"] = schema or schema_from_values(action["args"])
            action["schema_known"] = bool(schema)
            self.fields[f"decision_{n}"] = forms.ChoiceField(
                label=f"Decision for {action['name']}",
                choices=[(d, self.LABELS.get(d, d)) for d in action["allowed"]],
                widget=forms.RadioSelect,
                error_messages={"required": f"Choose a decision for {action['name']}."},
            )
            builder = schema_convention.Builder(action["schema"])
            tree = builder.build(
                action["schema"],
                name=f"a{n}",
                path=(),
                label="Arguments",
                required=True,
                initial=action["args"],
            )
            self.fields.update(builder.fields)
            self.trees.append(tree)
            if any(d in self.MESSAGE_DECISIONS for d in action["allowed"]):
                self.fields[f"message_{n}"] = forms.CharField(
                    label="Message", required=False, widget=forms.Textarea(attrs={"rows": 2})
                )
        for tree in self.trees:
            for node in schema_convention.leaves(tree):
                if node.kind == "field":
                    node.bound = self[node.name]
                elif node.kind == "union":
                    node.bound = self[f"{node.name}__variant"]

    def actions_of(self, value: Any, response_schema: Any) -> list[dict[str, Any]]:
        return hitl_actions(value or {})

    def action_fields(self) -> list[dict[str, Any]]:
        cards = []
        for n, action in enumerate(self.actions):
            tree = self.trees[n]
            cards.append(
                {
                    **action,
                    "n": n,
                    "decision_field": self[f"decision_{n}"],
                    "message_field": self[f"message_{n}"]
                    if f"message_{n}" in self.fields
                    else None,
                    "arg_nodes": tree.children if tree.kind == "object" else [tree],
                    "explain": [
                        (self.LABELS.get(d, d), self.EXPLAIN.get(d, "").format(name=action["name"]))
                        for d in action["allowed"]
                    ],
                    "can_edit": self.EDIT in action["allowed"],
                }
            )
        return cards

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        decisions = []
        for n, action in enumerate(self.actions):
            kind = cleaned.get(f"decision_{n}")
            problems: dict[str, str] = {}
            args = schema_convention.collect(self.trees[n], cleaned, problems)
            if args is schema_convention.MISSING:
                args = {}
            if kind is None:
                continue
            if kind == self.EDIT:
                for name, message in problems.items():
                    self.add_error(name, message)
                if problems:
                    continue
                placed = schema_convention.active_fields(self.trees[n], cleaned)
                bad = schema_convention.errors_of(action["schema"], args, {})
                for path, message in bad:
                    target = next(
                        (placed[path[:k]] for k in range(len(path), -1, -1) if path[:k] in placed),
                        f"decision_{n}",
                    )
                    self.add_error(target, message)
                if bad:
                    continue
            elif (
                not problems
                and self._args_posted(n)
                and args != action["args"]
                and self.EDIT in action["allowed"]
            ):
                # The screen showed changed arguments: sending the originals would not be what
                # the reviewer saw. Make them say which they mean.
                self.add_error(
                    f"decision_{n}",
                    f"You changed the arguments of {action['name']} but chose "
                    f"{self.LABELS.get(kind, kind)}: choose Edit to send your changes, "
                    "or undo them.",
                )
                continue
            message = (cleaned.get(f"message_{n}") or "").strip()
            if kind in self.MESSAGE_REQUIRED and not message:
                self.add_error(f"message_{n}", "Write the response to send back.")
                continue
            decisions.append(self.decision(action, kind, args, message))
        if len(decisions) == len(self.actions) and not self.errors:
            cleaned["value"] = self.answer(decisions)
        return cleaned

    def _args_posted(self, n: int) -> bool:
        """Whether the argument fields were sent at all (a script may post the decision alone)."""
        names = [
            node.name for node in schema_convention.leaves(self.trees[n]) if node.kind == "field"
        ]
        return any(name in self.data for name in names)

    def decision(
        self, action: dict[str, Any], kind: str, args: dict[str, Any], message: str
    ) -> dict[str, Any]:
        decision: dict[str, Any] = {"type": kind}
        if kind == "edit":
            decision["edited_action"] = {"name": action["name"], "args": args}
        elif kind in {"reject", "respond"} and message:
            decision["message"] = message
        return decision

    def answer(self, decisions: list[dict[str, Any]]) -> Any:
        return {"decisions": decisions}


class HitlForm(ActionCardsForm):
    """A batched request: every action's decision, sent together in order."""


class HitlCallForm(ActionCardsForm):
    """A per-call request: one action, answered with its decision alone."""

    def actions_of(self, value: Any, response_schema: Any) -> list[dict[str, Any]]:
        return [call_action(value or {}, response_schema)]

    def answer(self, decisions: list[dict[str, Any]]) -> Any:
        return decisions[0]
