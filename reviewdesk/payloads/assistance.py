"""The LangGraph tutorials' human_assistance tool.

It asks ``{"query": ...}`` and reads ``answer["data"]``.
"""

from __future__ import annotations

from typing import Any

from reviewdesk.payloads import AnswerError


def recognise(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"query"}


def validate(value: Any, answer: Any) -> None:
    """human_assistance reads answer["data"]: anything else would raise and stick."""
    if not (isinstance(answer, dict) and isinstance(answer.get("data"), str)):
        raise AnswerError('This question expects {"data": "your reply"}.')
