"""Property tests: for any JSON-like value, the answer check only accepts or refuses, and the
value renderer only returns escaped HTML.

Values are generated recursively, then some are wrapped thousands of levels deep; leaves include
NUL, lone surrogates, markup, huge integers, NaN and infinities.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from reviewdesk.payloads import (
    AnswerError,
    answer_validate,
    json_depth,
    json_text,
    pretty,
    summary,
)
from reviewdesk.templatetags.desk import VALUE_LEVELS, value_html

PROPERTY = settings(
    deadline=None,  # a shared 2-core box: never fail on timing
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

MARKUP = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    'hx-get="/admin/"',
    "</dd></dl><b>",
    "&lt;already escaped&gt;",
    "'\"&<>",
]
ODD = ["\x00", "a\x00b", "\ud800", "\udfff", "\u2028\u2029", "\u202e", "\ufeff", "𝔘𝔫𝔦", "\r\n\t"]


def _past_str_limit(negative: bool) -> int:
    """An integer of 5,000 digits, past Python's int-to-str limit."""
    return -(10**5000) if negative else 10**5000


text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=20),  # surrogates and controls too
    st.sampled_from(MARKUP + ODD),
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**400]),
    st.booleans().map(_past_str_limit),  # built lazily: repr() of it raises ValueError
    st.floats(),  # NaN and the infinities included
)
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(text, children, max_size=4)
    ),
    max_leaves=25,
)


def wrap(value: Any, depth: int, kind: str) -> Any:
    for n in range(depth):
        as_list = kind == "list" or (kind == "mixed" and n % 2)
        value = [value] if as_list else {"k": value}
    return value


deep_values = st.builds(
    wrap,
    json_values,
    st.one_of(st.integers(0, 12), st.integers(95, 105), st.integers(250, 3000)),
    st.sampled_from(["list", "dict", "mixed"]),
)
any_values = st.one_of(json_values, deep_values)

HITL = {
    "action_requests": [{"name": "send_email", "args": {"to": "a@b.c"}, "description": "Send?"}],
    "review_configs": [{"action_name": "send_email", "allowed_decisions": ["approve", "edit"]}],
}
hitl_like = st.fixed_dictionaries(
    {
        "action_requests": st.lists(
            st.one_of(json_values, st.fixed_dictionaries({"name": any_values})), max_size=3
        ),
        "review_configs": st.lists(
            st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {"action_name": any_values, "allowed_decisions": json_values}
                ),
            ),
            max_size=3,
        ),
    }
)
interrupt_values = st.one_of(
    st.sampled_from(["What is your age?", {"query": "Help?"}, HITL]), hitl_like, any_values
)
schemas = st.sampled_from(
    [
        None,
        {"type": "integer"},
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
        {"type": "array", "items": {"type": "array"}},
        {"type": "nonsense"},
    ]
)
answers = st.one_of(
    any_values,
    st.builds(lambda d: {"decisions": d}, st.lists(json_values, max_size=3)),
    st.builds(lambda d: {"data": d}, any_values),
)


@PROPERTY
@given(value=interrupt_values, schema=schemas, answer=answers)
def test_answer_validate_accepts_or_refuses_and_nothing_else(
    value: Any, schema: dict[str, Any] | None, answer: Any
) -> None:
    try:
        accepted = answer_validate(value=value, response_schema=schema, answer=answer)
    except AnswerError as exc:
        assert str(exc)  # a message a reviewer can read
        return
    # What is accepted, the databases and the checkpointer can store.
    assert accepted is answer
    assert json_depth(answer) <= 100
    encoded = json.dumps(answer, ensure_ascii=False, allow_nan=False)
    assert "\\u0000" not in encoded and "\x00" not in encoded
    serde = JsonPlusSerializer()
    assert serde.loads_typed(serde.dumps_typed({"__resume__": answer})) == {"__resume__": answer}


OWN_MARKUP = re.compile(
    r'<(dl|ol|span|pre) class="(value-map|value-list|value-scalar|json)">'
    r"|</?(dl|ol|span|pre|dt|dd|li|em)>"
)


@PROPERTY
@given(value=any_values)
def test_the_value_renderer_returns_only_its_own_markup(value: Any) -> None:
    html = value_html(value)
    assert isinstance(html, str)
    # Take away the renderer's own tags: every remaining character of the value is escaped.
    rest = OWN_MARKUP.sub("", html)
    assert "<" not in rest and ">" not in rest and '"' not in rest
    assert html.count("<dl") + html.count("<ol") <= 4**VALUE_LEVELS  # bounded, never recursive
    assert html.count("<pre") <= 4**VALUE_LEVELS


@PROPERTY
@given(value=json_values)
def test_shallow_strings_appear_escaped_in_the_rendering(value: Any) -> None:
    html = value_html(value)
    for leaf in _strings(value):
        assert _escaped(leaf) in html


@PROPERTY
@given(value=any_values)
def test_pretty_summary_and_json_text_take_any_value(value: Any) -> None:
    assert isinstance(pretty(value), str)
    one_line = summary(value)
    assert len(one_line) <= 140 and "\n" not in one_line
    text = json_text(value)
    if json_depth(value) < 200:  # json.dumps recurses; compare where it can
        try:
            expected = json.dumps(value, ensure_ascii=False)
        except ValueError:  # an integer past 4,300 digits: json_text shows a placeholder
            return
        assert text == expected


def _strings(value: Any) -> list[str]:
    found: list[str] = []
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            found += current.keys()
            stack += current.values()
        elif isinstance(current, list):
            stack += current
        elif isinstance(current, str):
            found.append(current)
    return found


def _escaped(text: str) -> str:
    from django.utils.html import escape

    return escape(text)
