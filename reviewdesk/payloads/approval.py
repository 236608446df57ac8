"""Yes/no questions: an answer schema with exactly two outcomes gets Approve / Reject buttons.

Recognised from the answer schema (the interrupt's ``response_schema`` or a per-graph
declaration): a boolean; an enum of two values; or an object whose one required property is a
boolean, beside optional text properties (a comment). A JSON box for "yes" was the wrong tool:
the reviewer had to guess the shape and got "invalid JSON" for the obvious answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django import forms

from reviewdesk.payloads import schema as schema_convention

_POSITIVE = {"yes", "y", "true", "approve", "approved", "accept", "accepted", "ok", "allow"}


@dataclass(frozen=True)
class Approval:
    """How an Approve and a Reject are written for this schema."""

    approve: Any
    reject: Any
    flag: str = ""  # the boolean property of an object answer ("approved")
    extras: tuple[str, ...] = field(default_factory=tuple)  # optional text properties


def approval_of(schema: Any) -> Approval | None:
    if not isinstance(schema, dict) or not schema:
        return None
    schema = schema_convention.resolve(schema, schema)
    if schema.get("type") == "boolean" and "enum" not in schema:
        return Approval(approve=True, reject=False)
    values = schema.get("enum")
    if isinstance(values, list) and len(values) == 2:
        first, second = values
        if str(second).strip().lower() in _POSITIVE and str(first).strip().lower() not in _POSITIVE:
            first, second = second, first
        return Approval(approve=first, reject=second)
    properties = schema.get("properties")
    required = schema.get("required") or []
    if schema.get("type") == "object" and isinstance(properties, dict) and len(required) == 1:
        flag = required[0]
        inner = schema_convention.resolve(properties.get(flag), schema)
        if inner.get("type") != "boolean":
            return None
        extras = tuple(k for k in properties if k != flag)
        if not all(
            schema_convention.resolve(properties[k], schema).get("type") == "string" for k in extras
        ):
            return None
        return Approval(approve={flag: True}, reject={flag: False}, flag=flag, extras=extras)
    return None


class ApprovalForm(forms.Form):
    """Two buttons (name="decision"), plus the schema's optional text fields (a comment)."""

    decision = forms.ChoiceField(
        choices=[("approve", "Approve"), ("reject", "Reject")],
        error_messages={"required": "Choose Approve or Reject."},
    )

    def __init__(
        self, *args: Any, value: Any = None, schema: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.approval = approval_of(schema) or Approval(approve=True, reject=False)
        properties = (schema or {}).get("properties") or {}
        for key in self.approval.extras:
            inner = schema_convention.resolve(properties.get(key), schema or {})
            self.fields[f"extra_{key}"] = forms.CharField(
                label=schema_convention._label(key, inner) + " (optional)",
                help_text=inner.get("description", ""),
                required=False,
                widget=forms.Textarea(attrs={"rows": 2}),
            )

    def extra_fields(self) -> list[Any]:
        return [self[f"extra_{key}"] for key in self.approval.extras]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        decision = cleaned.get("decision")
        if decision is None:
            return cleaned
        answer = self.approval.approve if decision == "approve" else self.approval.reject
        if isinstance(answer, dict):
            answer = dict(answer)
            for key in self.approval.extras:
                text = (cleaned.get(f"extra_{key}") or "").strip()
                if text:
                    answer[key] = text
        cleaned["value"] = answer
        return cleaned


def answer_for(schema: Any, decision: str) -> Any:
    """The answer an Approve or a Reject sends (bulk decisions, deep links)."""
    approval = approval_of(schema)
    if approval is None:
        raise ValueError("not an approval")
    return approval.approve if decision == "approve" else approval.reject
