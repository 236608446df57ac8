"""What graphs surface and what reviewers answer: kinds of interrupt payloads and answer checks.

This module holds what every convention shares (JSON-safe copies, parsing, size and depth
limits, the dispatch over conventions); each interrupt convention has a module of its own
beside it (``hitl``, ``assistance``, ...): how to recognise it and how to check an answer.

Answers are validated before any resume: a bad answer that reaches a node which then raises is
stored by LangGraph and replayed forever ("sticky"), so refusing it here is what keeps threads
from getting stuck.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

import jsonschema
from django.conf import settings
from pydantic import ConfigDict, TypeAdapter

# bytes become base64 text, so one undecodable byte string cannot flatten a whole payload.
_ANY = TypeAdapter(Any, config=ConfigDict(ser_json_bytes="base64"))
# The checkpointer's serialiser refuses integers outside this range (and would fail the run).
_INT_RANGE = (-(2**63), 2**64 - 1)
# Values nested deeper than this are pretty-printed on one line: indenting them would cost
# O(depth²) characters, and json's indenting encoder recurses once per level.
_PRETTY_INDENT_DEPTH = 64


class Kind(StrEnum):
    QUESTION = "question"  # a plain string: answered with text
    HITL = "hitl"  # LangChain HumanInTheLoopMiddleware, batched: {"action_requests", ...}
    HITL_CALL = "hitl_call"  # the same middleware per call: {"type": "tool_approval", ...}
    AGENT_INBOX = "agent_inbox"  # Agent Inbox HumanInterrupt: [{"action_request", "config"}]
    ASSISTANCE = "assistance"  # the tutorials' human_assistance tool: {"query"} → {"data"}
    JSON = "json"  # anything else: rendered readably, answered with text or JSON


class AnswerError(ValueError):
    """An answer the desk refuses; the message is shown to the reviewer as is."""


def to_json(value: Any) -> Any:
    """A JSON-safe copy of a value from a graph (tuples become lists, objects their fields)."""
    try:
        return _ANY.dump_python(value, mode="json", fallback=repr)
    except Exception:  # a value pydantic cannot walk at all
        try:
            return repr(value)
        except Exception:  # even repr fails (e.g. recursion in a deep object)
            return f"<{type(value).__name__} that cannot be shown>"


def to_storable(value: Any) -> Any:
    """A JSON-safe copy that every database can store: NUL characters become U+FFFD.

    PostgreSQL's jsonb refuses "\\u0000" in strings and keys. Values a graph surfaces are
    mirrored for people to read (the graph keeps the original in its checkpoint), so a visible
    replacement character is honest where refusing would leave a question nobody can see.
    """
    stack: list[Any] = []
    root = to_json(value)
    if isinstance(root, str):
        return root.replace("\x00", "\ufffd")
    stack.append(root)
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            for key in list(current):
                inner = current[key]
                if isinstance(inner, str):
                    inner = inner.replace("\x00", "\ufffd")
                elif isinstance(inner, dict | list):
                    stack.append(inner)
                if isinstance(key, str) and "\x00" in key:
                    del current[key]
                    key = key.replace("\x00", "\ufffd")
                current[key] = inner
        elif isinstance(current, list):
            for index, inner in enumerate(current):
                if isinstance(inner, str):
                    current[index] = inner.replace("\x00", "\ufffd")
                elif isinstance(inner, dict | list):
                    stack.append(inner)
    return root


def kind_of(value: Any) -> Kind:
    if isinstance(value, str):
        return Kind.QUESTION
    if (
        isinstance(value, dict)
        and isinstance(value.get("action_requests"), list)
        and isinstance(value.get("review_configs"), list)
    ):
        return Kind.HITL
    if hitl.recognise_call(value):
        return Kind.HITL_CALL
    if agent_inbox.recognise(value):
        return Kind.AGENT_INBOX
    if assistance.recognise(value):
        return Kind.ASSISTANCE
    return Kind.JSON


def parse_json(text: str) -> Any:
    """What a person typed as JSON, or AnswerError saying what is wrong with it."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise AnswerError(
            f"That is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    except ValueError as exc:  # e.g. a number too long for Python to convert
        raise AnswerError(f"That is not valid JSON: {exc}") from None
    except RecursionError:  # the parser recurses once per level: ~1,000 levels exhaust it
        raise AnswerError(_too_deep_message("That JSON")) from None
    if json_depth(value, stop_after=max_json_depth()) > max_json_depth():
        raise AnswerError(_too_deep_message("That JSON"))
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def storable_size(value: Any, *, what: str = "answer") -> int:
    """Bytes of the value as JSON; refuse what the database or the checkpointer cannot store.

    The structural checks walk the value without recursion before anything recursive
    (json.dumps, the checkpointer's msgpack) sees it, so no depth can raise RecursionError.
    """
    _check_storable(value, what)
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise AnswerError(f"The {what} cannot be stored as JSON: {exc}.") from None
    except RecursionError:  # only if REVIEWDESK_MAX_JSON_DEPTH is set near Python's own limit
        raise AnswerError(_too_deep_message(f"The {what}")) from None
    return len(encoded)


def max_json_depth() -> int:
    """The deepest nesting accepted in answers and inputs (REVIEWDESK_MAX_JSON_DEPTH)."""
    return settings.REVIEWDESK_MAX_JSON_DEPTH


def json_depth(value: Any, *, stop_after: int | None = None) -> int:
    """Levels of nested lists and mappings (a scalar is 0, ``[[1]]`` is 2), without recursion.

    With stop_after, the walk stops as soon as the depth exceeds it (and returns that depth).
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children: Any = current.values()
        elif isinstance(current, list | tuple):
            children = current
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if stop_after is not None and deepest > stop_after:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def _too_deep_message(subject: str) -> str:
    limit = max_json_depth()
    return f"{subject} is nested too deeply: at most {limit} levels of lists and objects."


def _check_storable(value: Any, what: str) -> None:
    """Refuse nesting past the limit, NUL characters and integers beyond 64 bits.

    Depth: LangGraph's checkpoint serialiser (ormsgpack) refuses more than 255 levels, and the
    checkpoint wraps an input or answer in a few levels of its own, so a deep answer used to be
    accepted here and fail the run later ("Recursion limit reached"); the limit keeps a wide
    margin for graphs that nest what they receive in their own state.
    NUL: PostgreSQL's jsonb cannot hold U+0000 (a DataError there, stored fine on SQLite); one
    rule on both databases keeps the desk's behaviour the same wherever it runs.
    """
    limit = max_json_depth()
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            if depth >= limit:
                raise AnswerError(_too_deep_message(f"The {what}"))
            for key, child in current.items():
                if isinstance(key, str) and "\x00" in key:
                    raise AnswerError(_nul_message(what))
                stack.append((child, depth + 1))
        elif isinstance(current, list | tuple):
            if depth >= limit:
                raise AnswerError(_too_deep_message(f"The {what}"))
            stack.extend((child, depth + 1) for child in current)
        elif isinstance(current, str):
            if "\x00" in current:
                raise AnswerError(_nul_message(what))
        elif (
            isinstance(current, int)
            and not isinstance(current, bool)
            and not _INT_RANGE[0] <= current <= _INT_RANGE[1]
        ):
            raise AnswerError(f"The {what} has an integer too large to store (over 64 bits).")


def _nul_message(what: str) -> str:
    return f"The {what} contains a NUL character (\\u0000), which cannot be stored; remove it."


def answer_validate(
    *,
    value: Any,
    response_schema: dict[str, Any] | None,
    answer: Any,
    tool_schemas: dict[str, dict[str, Any]] | None = None,
) -> Any:
    """Return the answer if the graph can safely receive it, else raise AnswerError.

    tool_schemas (tool name → JSON Schema of its arguments) checks HITL edits: an edit that
    leaves out a required argument would reach the tool and fail after the resume.
    """
    size = storable_size(answer)
    if size > settings.REVIEWDESK_MAX_ANSWER_BYTES:
        raise AnswerError(
            f"The answer is too large ({size} bytes; the limit is "
            f"{settings.REVIEWDESK_MAX_ANSWER_BYTES})."
        )
    kind = kind_of(value)
    if kind is Kind.HITL:
        hitl.validate(value, answer)
        hitl.validate_edits(value, answer, tool_schemas or {})
    elif kind is Kind.AGENT_INBOX:
        agent_inbox.validate(value, answer)
    elif kind is Kind.ASSISTANCE:
        assistance.validate(value, answer)
    # After the convention's own checks, whose messages say what the convention expects.
    if response_schema:
        try:
            jsonschema.validate(answer, response_schema)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "the answer"
            raise AnswerError(f"{where}: {exc.message}") from None
        except jsonschema.SchemaError:
            pass  # the graph's schema is broken; fall through to the checks below
    return answer


def summary(value: Any, limit: int = 140) -> str:
    """One line that tells a reviewer what is being asked (any value, any depth)."""
    text: Any
    if isinstance(value, str):
        text = value
    elif kind_of(value) is Kind.HITL:
        # Fifty "Approve tool call: send_email" rows look identical: say what each call does.
        text = " · ".join(hitl.most_telling(a) for a in hitl.hitl_actions(value))
    elif kind_of(value) is Kind.HITL_CALL:
        text = hitl.most_telling(hitl.call_action(value, None))
    elif kind_of(value) is Kind.AGENT_INBOX:
        text = " · ".join(hitl.most_telling(a) for a in agent_inbox.actions(value))
    elif isinstance(value, dict):
        text = next(
            (value[k] for k in ("question", "query", "description", "message") if k in value),
            value,
        )
    else:
        text = value
    if not isinstance(text, str):
        text = json_text(text, limit=limit)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pretty(value: Any) -> str:
    """Indented JSON for people; one line past a deep nesting; never raises."""
    if json_depth(value, stop_after=_PRETTY_INDENT_DEPTH) <= _PRETTY_INDENT_DEPTH:
        try:
            return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
        except (TypeError, ValueError):  # not JSON (an object, a 5,000-digit integer)
            pass
    return "".join(_json_pieces(value))


_SPACES = re.compile(r"\s+")


def json_text(value: Any, *, limit: int | None = None) -> str:
    """Compact JSON text of any value at any depth (not-JSON parts as their repr).

    With a limit, stops once the text, whitespace collapsed, is longer than that: enough for
    a one-line summary of a large value without encoding all of it.
    """
    if limit is None:
        return "".join(_json_pieces(value))
    text = ""
    for piece in _json_pieces(value):
        text = _SPACES.sub(" ", text + piece)
        if len(text.strip()) > limit:
            break
    return text


class _Raw(str):
    """Punctuation already encoded, as opposed to a string value still to encode."""


def _json_pieces(value: Any) -> Iterator[str]:
    """json.dumps(value, ensure_ascii=False) in pieces, with a stack instead of recursion."""
    stack: list[Any] = [value]
    while stack:
        current = stack.pop()
        if type(current) is _Raw:
            yield current
        elif isinstance(current, dict):
            parts: list[Any] = []
            for n, (key, child) in enumerate(current.items()):
                parts += [_Raw((", " if n else "") + _scalar(_key(key)) + ": "), child]
            stack += [_Raw("}"), *reversed(parts)]
            yield "{"
        elif isinstance(current, list | tuple):
            parts = []
            for n, child in enumerate(current):
                parts += [_Raw(", "), child] if n else [child]
            stack += [_Raw("]"), *reversed(parts)]
            yield "["
        else:
            yield _scalar(current)


def _key(key: Any) -> str:
    """A mapping key as json.dumps writes it: always a string."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return _scalar(key).strip('"')
    return repr(key)


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None or isinstance(value, bool | int | float):
        try:
            return json.dumps(value)
        except ValueError:  # an integer past Python's 4,300-digit str() limit
            return '"(an integer too long to show)"'
    return json.dumps(repr(value), ensure_ascii=False)


# Conventions import the helpers above; imported last so that they find them defined.
from reviewdesk.payloads import agent_inbox, assistance, hitl  # noqa: E402
