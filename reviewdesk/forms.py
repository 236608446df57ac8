"""Forms turn what a person typed into the value a graph receives; services judge the value."""

from __future__ import annotations

from typing import Any

from django import forms

from reviewdesk import payloads
from reviewdesk.engine import registry
from reviewdesk.models import ReviewItem


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


class BreakpointForm(forms.Form):
    """Continue past a static breakpoint, optionally editing the state first."""

    state_update = forms.CharField(
        label="Edit the state before continuing (optional JSON object of keys to change)",
        required=False,
        strip=False,
        widget=forms.Textarea(
            attrs={"rows": 4, "class": "mono", "placeholder": '{"key": "new value"}'}
        ),
    )

    def __init__(self, *args: Any, value: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        answer: dict[str, Any] = {"action": "continue"}
        text = (cleaned.get("state_update") or "").strip()
        if text:
            try:
                update = payloads.parse_json(text)
            except payloads.AnswerError as exc:
                self.add_error("state_update", str(exc))
                return cleaned
            if not isinstance(update, dict) or not update:
                self.add_error("state_update", "The edit must be a JSON object of keys to change.")
                return cleaned
            answer["state_update"] = update
        cleaned["value"] = answer
        return cleaned


def answer_form_class(item: ReviewItem) -> type[forms.Form]:
    """The form that turns what a person types into this item's answer (its convention's)."""
    from reviewdesk.payloads import conventions

    return conventions.for_item(item).form_class


class ThreadStartForm(forms.Form):
    """Start a run of a registered graph with a JSON input."""

    graph = forms.ChoiceField()
    input = forms.CharField(
        label="Input (JSON)",
        widget=forms.Textarea(attrs={"rows": 8}),
        strip=False,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        specs = registry.graph_specs()
        self.fields["graph"].choices = [
            (name, f"{name} — {spec.description}" if spec.description else name)
            for name, spec in specs.items()
        ]
        if specs and not self.is_bound:
            # Pre-fill only a real example: a made-up {} would look valid and fail at once.
            first = next(iter(specs.values()))
            self.fields["input"].initial = (
                "" if first.example_input is None else payloads.pretty(first.example_input)
            )

    def clean_input(self) -> Any:
        try:
            return payloads.parse_json(self.cleaned_data["input"])
        except payloads.AnswerError as exc:
            raise forms.ValidationError(str(exc)) from None
