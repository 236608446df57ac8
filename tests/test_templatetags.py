"""The value renderer: the markup the item page shows, escaped, bounded in depth."""

from __future__ import annotations

from typing import Any

from django.template import Context, Template

from reviewdesk.templatetags.desk import VALUE_LEVELS, value_html


def deep(levels: int, leaf: Any = "x") -> Any:
    value = leaf
    for n in range(levels):
        value = [value] if n % 2 else {"k": value}
    return value


def test_mappings_lists_and_scalars() -> None:
    value = {"name": "Ada", "tags": ["a", 2, 1.5], "ok": True, "no": False, "none": None}
    assert value_html(value) == (
        '<dl class="value-map">'
        '<dt>name</dt><dd><span class="value-scalar">Ada</span></dd>'
        '<dt>tags</dt><dd><ol class="value-list"><li><span class="value-scalar">a</span></li>'
        '<li><span class="value-scalar">2</span></li>'
        '<li><span class="value-scalar">1.5</span></li></ol></dd>'
        '<dt>ok</dt><dd><span class="value-scalar">true</span></dd>'
        '<dt>no</dt><dd><span class="value-scalar">false</span></dd>'
        "<dt>none</dt><dd><em>null</em></dd></dl>"
    )
    assert value_html({}) == '<dl class="value-map"><dd><em>empty</em></dd></dl>'
    assert value_html([]) == '<ol class="value-list"><li><em>empty</em></li></ol>'


def test_keys_and_values_are_escaped() -> None:
    html = value_html({'<b onclick="x">': ["<script>alert(1)</script>", "a & b"]})
    assert "<dt>&lt;b onclick=&quot;x&quot;&gt;</dt>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a &amp; b" in html
    assert "<script" not in html and "<b " not in html


def test_past_the_bound_the_rest_is_raw_json() -> None:
    html = value_html(deep(VALUE_LEVELS + 1, leaf="<i>"))
    assert html.count("<dl") + html.count("<ol") == VALUE_LEVELS
    assert '<pre class="json">{\n  &quot;k&quot;: &quot;&lt;i&gt;&quot;\n}</pre>' in html
    # A level that is exactly at the bound but holds a scalar renders normally.
    assert "<pre" not in value_html(deep(VALUE_LEVELS))


def test_any_depth_renders() -> None:
    html = value_html(deep(100_000))
    assert html.count("<dl") + html.count("<ol") == VALUE_LEVELS
    assert html.count("<pre") == 1


def test_the_include_the_pages_use_renders_the_tag() -> None:
    template = Template('{% include "reviewdesk/_value.html" with value=v %}')
    value = {"q": ["<x>"]}
    assert template.render(Context({"v": value})).rstrip("\n") == value_html(value)
