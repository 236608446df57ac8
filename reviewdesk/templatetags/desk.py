"""Template filters and tags for rendering untrusted graph values (always escaped)."""

from __future__ import annotations

import re
from typing import Any

import nh3
from django import template
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

from reviewdesk import payloads

register = template.Library()

# Levels of lists and mappings rendered as nested HTML; anything deeper shows as raw JSON.
# A value may be nested as deep as a graph likes: the old recursive {% include %} ran out of
# stack at ~120 levels and made the item page (and so the answer form) a 500.
VALUE_LEVELS = 8

_NULL = format_html("<em>{}</em>", "null")
_EMPTY_ENTRY = format_html("<dd><em>{}</em></dd>", "empty")
_EMPTY_ITEM = format_html("<li><em>{}</em></li>", "empty")


@register.filter
def summary(value: Any) -> str:
    return payloads.summary(value)


@register.filter
def pretty_json(value: Any) -> str:
    return payloads.pretty(value)


@register.simple_tag
def render_value(value: Any) -> SafeString:
    """A surfaced value as readable HTML: mappings as <dl>, lists as <ol>, scalars as text."""
    return value_html(value)


def value_html(value: Any, levels: int = VALUE_LEVELS) -> SafeString:
    """Escaped HTML for any value; recursion is bounded by levels, whatever the value's depth.

    Every piece of the value goes through format_html's escaping; nothing here marks
    untrusted text safe.
    """
    if isinstance(value, dict | list | tuple) and value and levels <= 0:
        return format_html('<pre class="json">{}</pre>', payloads.pretty(value))
    if isinstance(value, dict):
        rows = format_html_join(
            "",
            "<dt>{}</dt><dd>{}</dd>",
            ((_key_text(key), value_html(inner, levels - 1)) for key, inner in value.items()),
        )
        return format_html('<dl class="value-map">{}</dl>', rows or _EMPTY_ENTRY)
    if isinstance(value, list | tuple):
        rows = format_html_join(
            "", "<li>{}</li>", ((value_html(inner, levels - 1),) for inner in value)
        )
        return format_html('<ol class="value-list">{}</ol>', rows or _EMPTY_ITEM)
    if value is None:
        return _NULL
    text = value if isinstance(value, str) else payloads.json_text(value)
    return format_html('<span class="value-scalar">{}</span>', text)


def _key_text(key: Any) -> str:
    return key if isinstance(key, str) else payloads.json_text(key)


# --- workbench -----------------------------------------------------------------------------------

# Markdown from graphs and queue settings: no raw HTML is parsed, and what markdown makes is
# cleaned again by nh3 (ammonia) with a short allow-list, links made safe.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_TEXT = re.compile(r"(^|>)([^<]*)")
_TAGS = {
    "p",
    "br",
    "strong",
    "em",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
}


@register.filter
def markdown(text: Any) -> SafeString:
    """Markdown as sanitised HTML (anything not a string is shown as its JSON)."""
    if not isinstance(text, str):
        text = payloads.json_text(text)
    html = _MARKDOWN.render(text[:100_000])
    cleaned = nh3.clean(
        html,
        tags=_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    # Quotes in text, escaped as everywhere else on the desk (nh3 writes them raw between tags).
    cleaned = _TEXT.sub(lambda m: m.group(1) + m.group(2).replace('"', "&quot;"), cleaned)
    return mark_safe(cleaned)  # noqa: S308 - nh3 has just removed everything not allowed


@register.filter
def age(moment: Any) -> str:
    """How long ago, the way people say it: "just now", "3 min", "2 h", "4 d" (desk.js keeps
    it current)."""
    if not moment:
        return ""
    seconds = max(0, int((timezone.now() - moment).total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


@register.filter
def when(moment: Any) -> str:
    """A moment with its day and time zone: "Sun 22 Nov 2026, 01:13 UTC"."""
    if not moment:
        return ""
    local = timezone.localtime(moment)
    return f"{local:%a %d %b %Y, %H:%M} {local.tzname()}"


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    return mapping.get(key, "") if isinstance(mapping, dict) else ""


@register.simple_tag
def query_with(filters: Any, **changes: Any) -> str:
    """The URL query of a view's filters with some changed (a cursor dropped unless given)."""
    return filters.query(**{k: str(v) for k, v in changes.items()})


@register.filter
def is_approval(item: Any) -> bool:
    """Whether the item is a plain yes/no (bulk approve/reject may decide it); once per item."""
    from reviewdesk.payloads import conventions

    cached = getattr(item, "_is_approval", None)
    if cached is None:
        try:
            cached = conventions.for_item(item).kind == "approval"
        except Exception:  # a row must render whatever the graph module does
            cached = False
        item._is_approval = cached
    return cached


@register.simple_tag
def age_time(moment: Any) -> SafeString:
    """<time> with the moment's day and zone as its title and its age as text (kept current
    by desk.js)."""
    if not moment:
        return format_html("")
    return format_html(
        '<time datetime="{}" title="{}" data-age>{}</time>',
        moment.isoformat(),
        when(moment),
        age(moment),
    )


@register.filter
def json_attr(value: Any) -> str:
    """Compact JSON text of a value, for a data- attribute (escaped by the template)."""
    return payloads.json_text(value)


@register.filter
def as_list(value: Any) -> list[Any]:
    return [value]


@register.filter
def is_text(value: Any) -> bool:
    return isinstance(value, str)


def _shown(value: Any) -> str:
    if value is _ABSENT:
        return "—"
    return value if isinstance(value, str) else payloads.json_text(value)


_ABSENT = object()


@register.filter
def edits(item: Any) -> list[dict[str, Any]]:
    """For each edited tool call of a decided item: the arguments that changed, old and new."""
    from reviewdesk.payloads import agent_inbox, hitl

    value, answer = item.value, item.answer
    pairs: list[tuple[str, Any, Any]] = []
    kind = payloads.kind_of(value)
    if kind is payloads.Kind.HITL and isinstance(answer, dict):
        for action, decision in zip(
            hitl.hitl_actions(value), answer.get("decisions") or [], strict=False
        ):
            if isinstance(decision, dict) and decision.get("type") == "edit":
                new = (decision.get("edited_action") or {}).get("args")
                pairs.append((action["name"], action["args"], new))
    elif kind is payloads.Kind.HITL_CALL and isinstance(answer, dict):
        if answer.get("type") == "edit":
            new = (answer.get("edited_action") or {}).get("args")
            pairs.append((str(value.get("name", "")), value.get("args"), new))
    elif kind is payloads.Kind.AGENT_INBOX and isinstance(answer, list):
        for action, response in zip(agent_inbox.actions(value), answer, strict=False):
            if isinstance(response, dict) and response.get("type") == "edit":
                new = (response.get("args") or {}).get("args")
                pairs.append((action["name"], action["args"], new))
    found = []
    for name, old, new in pairs:
        old = old if isinstance(old, dict) else {}
        new = new if isinstance(new, dict) else {}
        rows = [
            (key, _shown(old.get(key, _ABSENT)), _shown(new.get(key, _ABSENT)))
            for key in dict.fromkeys([*old, *new])
            if old.get(key, _ABSENT) != new.get(key, _ABSENT)
        ]
        found.append({"name": name, "rows": rows})
    return found
