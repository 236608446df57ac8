"""Template filters for the ops page and its navigation link."""

from __future__ import annotations

from typing import Any

from django import template

from reviewdesk.queries import ops

register = template.Library()


@register.filter
def can_ops(user: Any) -> bool:
    """Staff, or a member of the "ops" group (who sees the Ops link)."""
    return ops.user_can_ops(user)


@register.filter
def seconds(value: float | None) -> str:
    """A duration for people: 42.0 s, 3.5 min, 2.0 h, 1.5 d."""
    from reviewdesk.views.ops import duration

    return duration(value)
