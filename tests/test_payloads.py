"""Interrupt payload kinds, summaries, JSON-safe copies and the answer checks that keep threads
from getting stuck (plain functions: no database)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from reviewdesk.payloads import (
    AnswerError,
    Kind,
    answer_validate,
    json_depth,
    json_text,
    kind_of,
    parse_json,
    pretty,
    summary,
    to_json,
)
from reviewdesk.payloads import hitl as hitl_convention

QUESTION = "What is your age?"
ASSISTANCE = {"query": "A user is asking for expert help: which framework?"}


def hitl(*actions: tuple[str, list[str]]) -> dict[str, Any]:
    """A HumanInTheLoopMiddleware request: one (tool name, allowed decisions) per action."""
    return {
        "action_requests": [
            {"name": name, "args": {"to": f"{name}@example.com"}, "description": f"Run {name}?"}
            for name, _ in actions
        ],
        "review_configs": [
            {"action_name": name, "allowed_decisions": allowed} for name, allowed in actions
        ],
    }


def refusal(value: Any, answer: Any, response_schema: dict[str, Any] | None = None) -> str:
    """The message answer_validate refuses the answer with (fails if it accepts it)."""
    with pytest.raises(AnswerError) as excinfo:
        answer_validate(value=value, response_schema=response_schema, answer=answer)
    return str(excinfo.value)


# --- kind_of ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (QUESTION, Kind.QUESTION),
        ("", Kind.QUESTION),
        (hitl(("send_email", ["approve"])), Kind.HITL),
        ({"action_requests": [], "review_configs": []}, Kind.HITL),
        (ASSISTANCE, Kind.ASSISTANCE),
        # Only exactly {"query"} is the human_assistance convention.
        ({"query": "x", "context": "y"}, Kind.JSON),
        # HITL needs both lists; a look-alike stays generic JSON.
        ({"action_requests": [{"name": "x"}]}, Kind.JSON),
        ({"action_requests": "x", "review_configs": []}, Kind.JSON),
        ({"question": "Approve?", "draft": "..."}, Kind.JSON),
        ([1, 2], Kind.JSON),
        (42, Kind.JSON),
        (None, Kind.JSON),
    ],
)
def test_kind_of(value: Any, kind: Kind) -> None:
    assert kind_of(value) is kind


# --- summary ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (QUESTION, QUESTION),
        ("Line one\n\n   line two\t", "Line one line two"),
        (
            hitl(("send_email", []), ("delete_file", [])),
            "Run send_email? · Run delete_file?",
        ),
        (
            # No description: the tool and its most telling arguments, not the name alone.
            {
                "action_requests": [
                    {"name": "send_email", "args": {"to": "a@x.org", "subject": "Hi", "n": [1]}}
                ],
                "review_configs": [],
            },
            "send_email(to: a@x.org, subject: Hi)",
        ),
        (ASSISTANCE, ASSISTANCE["query"]),
        (
            {"draft": "...", "question": "Approve this draft for legal?"},
            "Approve this draft for legal?",
        ),
        ({"description": "Deploy?", "message": "ignored"}, "Deploy?"),
        ({"question": 42}, "42"),
        ({"a": 1, "b": "é"}, '{"a": 1, "b": "é"}'),
        ([1, "two"], '[1, "two"]'),
        (None, "null"),
    ],
)
def test_summary(value: Any, expected: str) -> None:
    assert summary(value) == expected


def test_summary_truncates_to_the_limit_with_an_ellipsis() -> None:
    text = summary("x" * 500)
    assert len(text) == 140
    assert text.endswith("…")
    assert summary("x" * 140) == "x" * 140
    assert summary("abcdef", limit=4) == "abc…"


# --- to_json ------------------------------------------------------------------------------------


class Opaque:
    """An object pydantic knows nothing about."""

    def __repr__(self) -> str:
        return "<Opaque>"


@dataclasses.dataclass
class Point:
    x: int
    tags: tuple[str, ...]


def test_to_json_turns_tuples_into_lists() -> None:
    assert to_json({"pair": (1, (2, 3)), "items": [("a", 1)]}) == {
        "pair": [1, [2, 3]],
        "items": [["a", 1]],
    }


def test_to_json_replaces_unserialisable_objects_by_their_repr_and_keeps_the_rest() -> None:
    assert to_json({"tool": Opaque(), "n": 1, "nested": [Opaque()]}) == {
        "tool": "<Opaque>",
        "n": 1,
        "nested": ["<Opaque>"],
    }


def test_to_json_gives_objects_their_fields() -> None:
    assert to_json({"p": Point(1, ("a", "b"))}) == {"p": {"x": 1, "tags": ["a", "b"]}}


def test_to_json_of_a_value_it_cannot_walk_is_its_repr() -> None:
    loop: list[Any] = []
    loop.append(loop)
    assert to_json(loop) == "[[...]]"


def test_to_json_keeps_the_structure_around_undecodable_bytes() -> None:
    """One binary leaf (a tool result, say) must not turn the whole payload into a string.

    A string is a QUESTION, so a HITL request with one such leaf would lose its decision form and
    its HITL answer checks.
    """
    value = {**hitl(("send_email", ["approve"])), "attachment": b"\xff\xfe"}
    copy = to_json(value)
    assert isinstance(copy, dict)
    assert kind_of(copy) is Kind.HITL
    assert isinstance(copy["attachment"], str)


def test_to_json_results_are_json_as_is() -> None:
    value = {"ok": True, "n": None, "f": 1.5, "s": "x", "l": [1]}
    assert to_json(value) == value


# --- answer_validate: size and schema ----------------------------------------------------------


def test_answer_at_the_size_limit_passes_and_one_byte_more_is_refused(settings: Any) -> None:
    settings.REVIEWDESK_MAX_ANSWER_BYTES = 10
    assert answer_validate(value=QUESTION, response_schema=None, answer="x" * 8) == "x" * 8
    message = refusal(QUESTION, "x" * 9)
    assert message == "The answer is too large (11 bytes; the limit is 10)."


def test_answer_size_counts_utf8_bytes_not_characters(settings: Any) -> None:
    settings.REVIEWDESK_MAX_ANSWER_BYTES = 10
    # 5 characters, but 10 bytes of UTF-8 plus the two quotes.
    assert "12 bytes" in refusal(QUESTION, "ééééé")


SCHEMA = {
    "type": "object",
    "properties": {"age": {"type": "integer"}, "comment": {"type": "string"}},
    "required": ["age"],
}


def test_schema_error_names_the_offending_field() -> None:
    assert refusal(QUESTION, {"age": "old"}, SCHEMA) == "age: 'old' is not of type 'integer'"


def test_schema_error_names_a_missing_field() -> None:
    message = refusal(QUESTION, {"comment": "hi"}, SCHEMA)
    assert message == "the answer: 'age' is a required property"


def test_schema_error_gives_the_path_of_a_nested_field() -> None:
    schema = {
        "type": "object",
        "properties": {"people": {"type": "array", "items": {"type": "integer"}}},
    }
    assert refusal(QUESTION, {"people": [1, "two"]}, schema).startswith("people/1: ")


def test_answer_matching_the_schema_is_returned() -> None:
    answer = {"age": 42, "comment": "fine"}
    assert answer_validate(value=QUESTION, response_schema=SCHEMA, answer=answer) == answer


@pytest.mark.parametrize("answer", [float("nan"), {"score": float("-inf")}], ids=["nan", "-inf"])
def test_answers_json_cannot_carry_are_refused(answer: Any) -> None:
    """NaN and Infinity are not JSON: the JSONField's database check refuses them later, as a
    500 to the reviewer (IntegrityError on SQLite, DataError on PostgreSQL)."""
    assert refusal(QUESTION, answer)


@pytest.mark.parametrize("answer", [2**70, {"n": [0, -(2**70)]}], ids=["2**70", "-2**70"])
def test_answers_the_checkpointer_cannot_store_are_refused(answer: Any) -> None:
    """The resume value is written by msgpack, which stops at 64 bits: a bigger integer fails the
    run ("TypeError: Integer exceeds 64-bit range") instead of being refused here."""
    assert refusal(QUESTION, answer)


def test_integers_within_64_bits_are_accepted() -> None:
    for answer in (2**62, -(2**62), {"n": [0, 1]}):
        assert answer_validate(value=QUESTION, response_schema=None, answer=answer) == answer


def test_parse_json_explains_bad_json() -> None:
    with pytest.raises(AnswerError) as excinfo:
        parse_json('{"age": }')
    assert str(excinfo.value) == ("That is not valid JSON: Expecting value (line 1, column 9).")
    assert parse_json(' {"age": 42} ') == {"age": 42}


def test_parse_json_refuses_numbers_python_will_not_read_as_an_answer_error() -> None:
    """json.loads raises a plain ValueError past 4300 digits; forms only catch AnswerError."""
    with pytest.raises(AnswerError):
        parse_json("1" * 5000)


def test_a_broken_schema_does_not_block_answers() -> None:
    assert answer_validate(value=QUESTION, response_schema={"type": "nonsense"}, answer=1) == 1


# --- answer_validate: HumanInTheLoopMiddleware --------------------------------------------------

ALL = ["approve", "edit", "reject", "respond"]


@pytest.mark.parametrize("answer", ["approve", {"type": "approve"}, {"decisions": "approve"}, []])
def test_hitl_answer_must_be_a_decisions_list(answer: Any) -> None:
    assert refusal(hitl(("send_email", ALL)), answer) == (
        'The answer must be {"decisions": [...]}, one decision per action.'
    )


def test_hitl_needs_exactly_one_decision_per_action() -> None:
    value = hitl(("send_email", ALL), ("delete_file", ALL))
    assert refusal(value, {"decisions": [{"type": "approve"}]}) == (
        "Expected 2 decision(s), got 1."
    )
    three = {"decisions": [{"type": "approve"}] * 3}
    assert refusal(value, three) == "Expected 2 decision(s), got 3."


def test_hitl_refuses_a_decision_type_the_config_does_not_allow() -> None:
    value = hitl(("send_email", ["approve", "reject"]))
    message = refusal(value, {"decisions": [{"type": "edit"}]})
    assert message == "Decision 1 (send_email): choose one of approve, reject."


@pytest.mark.parametrize("decision", ["approve", {"kind": "approve"}, {"type": "maybe"}])
def test_hitl_refuses_a_decision_without_a_known_type(decision: Any) -> None:
    message = refusal(hitl(("send_email", ALL)), {"decisions": [decision]})
    assert message.startswith("Decision 1 (send_email): choose one of approve, edit")


@pytest.mark.parametrize(
    "edited",
    [
        None,
        {"name": "send_email"},
        {"name": "send_email", "args": "to=bob"},
        {"name": "send_email", "args": ["bob"]},
        {"args": {"to": "bob@example.com"}},
    ],
)
def test_hitl_edit_needs_the_edited_arguments_as_an_object(edited: Any) -> None:
    decision: dict[str, Any] = {"type": "edit"}
    if edited is not None:
        decision["edited_action"] = edited
    message = refusal(hitl(("send_email", ALL)), {"decisions": [decision]})
    assert message == (
        "Decision 1 (send_email): an edit needs the edited arguments as a JSON object."
    )


@pytest.mark.parametrize("message", [None, "", "   ", 42])
def test_hitl_respond_needs_a_message(message: Any) -> None:
    decision: dict[str, Any] = {"type": "respond"}
    if message is not None:
        decision["message"] = message
    refused = refusal(hitl(("send_email", ALL)), {"decisions": [decision]})
    assert refused == "Decision 1 (send_email): a response needs a message."


def test_hitl_reject_message_is_optional_but_must_be_text() -> None:
    value = hitl(("send_email", ALL))
    bare = {"decisions": [{"type": "reject"}]}
    assert answer_validate(value=value, response_schema=None, answer=bare) == bare
    refused = refusal(value, {"decisions": [{"type": "reject", "message": ["no"]}]})
    assert refused == "Decision 1 (send_email): the message must be text."


def test_hitl_error_numbers_the_offending_decision() -> None:
    value = hitl(("send_email", ALL), ("delete_file", ["approve", "reject"]))
    answer = {"decisions": [{"type": "approve"}, {"type": "respond", "message": "why?"}]}
    assert refusal(value, answer) == "Decision 2 (delete_file): choose one of approve, reject."


def test_hitl_valid_batch_is_returned_unchanged() -> None:
    value = hitl(
        ("send_email", ALL), ("delete_file", ["approve", "reject"]), ("post", ALL), ("call", ALL)
    )
    answer = {
        "decisions": [
            {
                "type": "edit",
                "edited_action": {"name": "send_email", "args": {"to": "bob@example.com"}},
            },
            {"type": "reject", "message": "Keep the file."},
            {"type": "respond", "message": "Post it tomorrow instead."},
            {"type": "approve"},
        ]
    }
    assert answer_validate(value=value, response_schema=None, answer=answer) is answer


def test_hitl_without_review_configs_allows_every_decision() -> None:
    value = {"action_requests": [{"name": "send_email", "args": {}}], "review_configs": []}
    for kind in ALL:
        decision = {"type": kind, "message": "m"}
        if kind == "edit":
            decision = {"type": kind, "edited_action": {"name": "send_email", "args": {}}}
        answer = {"decisions": [decision]}
        assert answer_validate(value=value, response_schema=None, answer=answer) == answer


# --- answer_validate: human_assistance ----------------------------------------------------------


@pytest.mark.parametrize(
    "answer", ["plain text", {"data": 42}, {"text": "hi"}, {"data": None}, ["data"], None]
)
def test_assistance_requires_data_as_text(answer: Any) -> None:
    assert refusal(ASSISTANCE, answer) == 'This question expects {"data": "your reply"}.'


def test_assistance_accepts_data_text() -> None:
    answer = {"data": "Use LangGraph."}
    assert answer_validate(value=ASSISTANCE, response_schema=None, answer=answer) == answer


@pytest.mark.parametrize("answer", ["42", 42, {"any": ["thing"]}, None, [1, 2]])
def test_questions_and_generic_json_take_any_json(answer: Any) -> None:
    for value in (QUESTION, {"question": "Approve?", "draft": "..."}):
        assert answer_validate(value=value, response_schema=None, answer=answer) == answer


# --- any depth, any value -------------------------------------------------------------------------


def deep_list(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def test_json_depth_counts_levels_without_recursing() -> None:
    assert [json_depth(v) for v in ("x", [], [[1]], {"a": [{"b": 2}]})] == [0, 1, 2, 3]
    assert json_depth(deep_list(100_000)) == 100_000
    assert json_depth(deep_list(100_000), stop_after=10) == 11


def test_pretty_and_summary_take_any_depth() -> None:
    """json.dumps and repr recurse once per level: ~1,000 levels raised RecursionError."""
    deep = deep_list(100_000)
    assert pretty(deep) == "[" * 100_000 + '"x"' + "]" * 100_000
    assert summary(deep) == "[" * 139 + "…"
    assert summary({"question": {"a": deep}}).startswith('{"a": [[[')


def test_pretty_indents_shallow_values_as_json_does() -> None:
    value = {"a": [1, {"b": "é"}], "c": None}
    assert pretty(value) == json.dumps(value, indent=2, ensure_ascii=False)


def test_json_text_matches_json_dumps_and_survives_what_it_cannot_encode() -> None:
    value = {"a": [1, 2.5, True, None, "x\n\u2028"], "": {}, "l": []}
    assert json_text(value) == json.dumps(value, ensure_ascii=False)
    assert json_text({1: 2, None: 3}) == '{"1": 2, "null": 3}'
    assert json_text([10**5000]) == '["(an integer too long to show)"]'
    assert json_text({"o": Opaque()}) == '{"o": "<Opaque>"}'


def test_summary_of_a_huge_value_reads_only_its_start() -> None:
    text = summary({"draft": " " * 10**6 + "word " * 10**5})
    assert text.startswith('{"draft": " word word word')
    assert len(text) == 140


def test_parse_json_refuses_deep_nesting_clearly(settings: Any) -> None:
    settings.REVIEWDESK_MAX_JSON_DEPTH = 100
    assert json_depth(parse_json("[" * 100 + "]" * 100)) == 100
    for depth in (101, 1_000, 100_000):  # json.loads raises RecursionError from ~1,000 on
        with pytest.raises(AnswerError) as excinfo:
            parse_json("[" * depth + "]" * depth)
        assert str(excinfo.value) == (
            "That JSON is nested too deeply: at most 100 levels of lists and objects."
        )


def test_nul_characters_are_refused_wherever_they_are() -> None:
    for answer in ("a\x00", {"k\x00": 1}, [{"k": ["\x00"]}]):
        assert refusal(QUESTION, answer) == (
            "The answer contains a NUL character (\\u0000), which cannot be stored; remove it."
        )


def test_hitl_values_with_odd_names_and_configs_still_validate() -> None:
    """A graph's value is untrusted: an unhashable or nested name used to raise TypeError."""
    value = {
        "action_requests": [{"name": {"nested": deep_list(3000)}, "description": deep_list(3000)}],
        "review_configs": [
            {"action_name": ["unhashable"], "allowed_decisions": ["approve"]},
            {"action_name": "x", "allowed_decisions": "approve"},
        ],
    }
    [action] = hitl_convention.hitl_actions(value)
    assert action["name"].startswith('{"nested": [[[')
    assert action["description"].startswith("[[[")
    assert action["allowed"] == ["approve", "edit", "reject", "respond"]
    assert summary(value).startswith("[[[")
    decisions = {"decisions": [{"type": "approve"}]}
    assert answer_validate(value=value, response_schema=None, answer=decisions) == decisions
    assert "choose one of" in refusal(value, {"decisions": [{"type": "launch"}]})
