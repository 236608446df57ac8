"""Template filters for rendering untrusted graph values (always autoescaped)."""

from __future__ import annotations

from typing import Any

from django import template

from reviewdesk import payloads

register = template.Library()


@register.filter
def summary(value: Any) -> str:
    return payloads.summary(value)


@register.filter
def pretty_json(value: Any) -> str:
    return payloads.pretty(value)


@register.filter
def is_mapping(value: Any) -> bool:
    return isinstance(value, dict)


@register.filter
def is_sequence(value: Any) -> bool:
    return isinstance(value, list)


@register.filter
def entries(value: Any) -> list[tuple[Any, Any]]:
    """A mapping's pairs; `.items` in a template would look up a key named "items"."""
    return list(value.items()) if isinstance(value, dict) else []
