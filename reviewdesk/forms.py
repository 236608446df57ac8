"""Forms turn what a person typed into the value a graph receives; services judge the value."""

from __future__ import annotations

from typing import Any

from django import forms

from reviewdesk import payloads, registry


class AnswerForm(forms.Form):
    """A free-text or JSON answer to any interrupt."""

    MODES = (("text", "Text"), ("json", "JSON"))

    mode = forms.ChoiceField(choices=MODES, widget=forms.RadioSelect, initial="text")
    answer = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "true"}),
        strip=False,
        error_messages={"required": "Type an answer first."},
    )

    def __init__(self, *args: Any, value: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A question wants text; a structured payload usually wants a structured answer.
        self.kind = payloads.kind_of(value)
        text_first = self.kind in (payloads.Kind.QUESTION, payloads.Kind.ASSISTANCE)
        self.fields["mode"].initial = "text" if text_first else "json"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        text = cleaned.get("answer")
        if text is None:
            return cleaned
        if cleaned.get("mode") == "json":
            try:
                cleaned["value"] = payloads.parse_json(text)
            except payloads.AnswerError as exc:
                self.add_error("answer", str(exc))
        else:
            text = text.strip()
            if not text:
                self.add_error("answer", "Type an answer first.")
            # human_assistance answers travel as {"data": text}; a person just types the text.
            cleaned["value"] = {"data": text} if self.kind is payloads.Kind.ASSISTANCE else text
        return cleaned


class HitlForm(forms.Form):
    """Approve / edit / reject / respond for each action of a HumanInTheLoopMiddleware request."""

    LABELS = {"approve": "Approve", "edit": "Edit", "reject": "Reject", "respond": "Respond"}

    def __init__(self, *args: Any, value: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.actions = payloads.hitl_actions(value or {})
        for n, action in enumerate(self.actions):
            self.fields[f"decision_{n}"] = forms.ChoiceField(
                label=f"Decision for {action['name']}",
                choices=[(d, self.LABELS.get(d, d)) for d in action["allowed"]],
                widget=forms.RadioSelect,
                initial=action["allowed"][0],
            )
            self.fields[f"args_{n}"] = forms.CharField(
                label="Edited arguments (JSON)",
                required=False,
                strip=False,
                initial=payloads.pretty(action["args"]),
                widget=forms.Textarea(attrs={"rows": 5}),
            )
            self.fields[f"message_{n}"] = forms.CharField(
                label="Message (for reject or respond)",
                required=False,
                widget=forms.Textarea(attrs={"rows": 2}),
            )

    def action_fields(self) -> list[dict[str, Any]]:
        return [
            {
                **action,
                "decision_field": self[f"decision_{n}"],
                "args_field": self[f"args_{n}"],
                "message_field": self[f"message_{n}"],
            }
            for n, action in enumerate(self.actions)
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        decisions = []
        for n, action in enumerate(self.actions):
            kind = cleaned.get(f"decision_{n}")
            if kind is None:
                return cleaned
            decision: dict[str, Any] = {"type": kind}
            if kind == "edit":
                try:
                    args = payloads.parse_json(cleaned.get(f"args_{n}") or "")
                except payloads.AnswerError as exc:
                    self.add_error(f"args_{n}", str(exc))
                    continue
                if not isinstance(args, dict):
                    self.add_error(f"args_{n}", "The arguments must be a JSON object.")
                    continue
                decision["edited_action"] = {"name": action["name"], "args": args}
            elif kind in {"reject", "respond"}:
                message = (cleaned.get(f"message_{n}") or "").strip()
                if kind == "respond" and not message:
                    self.add_error(f"message_{n}", "Write the response to send back.")
                    continue
                if message:
                    decision["message"] = message
            decisions.append(decision)
        cleaned["value"] = {"decisions": decisions}
        return cleaned


def answer_form_class(value: Any) -> type[forms.Form]:
    return HitlForm if payloads.kind_of(value) is payloads.Kind.HITL else AnswerForm


class ThreadStartForm(forms.Form):
    """Start a run of a registered graph with a JSON input."""

    graph = forms.ChoiceField()
    input = forms.CharField(
        label="Input (JSON)",
        widget=forms.Textarea(attrs={"rows": 8}),
        strip=False,
        initial="{}",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        specs = registry.graph_specs()
        self.fields["graph"].choices = [
            (name, f"{name} — {spec.description}" if spec.description else name)
            for name, spec in specs.items()
        ]
        if specs and not self.is_bound:
            first = next(iter(specs.values()))
            self.fields["input"].initial = payloads.pretty(first.example_input)

    def clean_input(self) -> Any:
        try:
            return payloads.parse_json(self.cleaned_data["input"])
        except payloads.AnswerError as exc:
            raise forms.ValidationError(str(exc)) from None
