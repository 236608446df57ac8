"""Asks for your age and asks again, saying why, until the answer is a valid age.

The question is a plain string; answer with a whole number (e.g. 42 or "42").
"""

from __future__ import annotations

from typing import Any, NotRequired

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict

EXAMPLE_INPUT: dict[str, Any] = {"name": "Ada"}

QUESTION = "What is your age?"
# Keeps answers plausible, and far below the checkpoint serialiser's integer limit.
MAX_AGE = 150


class State(TypedDict):
    name: NotRequired[str]
    age: NotRequired[int]
    # Why the previous answer was refused; the next question starts with it.
    problem: NotRequired[str]
    greeting: NotRequired[str]


def parse_age(answer: Any) -> int | None:
    """Return the age in an answer, or None so the caller asks again rather than failing."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, str):
        text = answer.strip()
        # isdigit alone accepts characters such as "²" that int() refuses.
        if not (text.isascii() and text.isdigit()):
            return None
        answer = int(text)
    if isinstance(answer, int) and 0 <= answer <= MAX_AGE:
        return answer
    return None


def _shown(answer: Any) -> str:
    """Quote an answer briefly, so a pasted essay does not swamp the next question."""
    text = repr(answer)
    return text if len(text) <= 40 else f"{text[:37]}..."


def ask_age(state: State) -> Command:
    """Ask, then loop back through a new task (so a new interrupt id) until the answer is valid."""
    problem = state.get("problem")
    answer = interrupt(f"{problem} {QUESTION}" if problem else QUESTION)
    age = parse_age(answer)
    if age is None:
        return Command(goto="ask_age", update={"problem": f"{_shown(answer)} is not a valid age."})
    return Command(goto="greet", update={"age": age, "problem": ""})


def greet(state: State) -> dict[str, str]:
    """Record the outcome in state, so the finished thread shows what was learned."""
    name = state.get("name") or "there"
    return {"greeting": f"Hello {name}, you are {state['age']} years old."}


graph = StateGraph(State)
graph.add_node("ask_age", ask_age, destinations=("ask_age", "greet"))
graph.add_node("greet", greet)
graph.add_edge(START, "ask_age")
graph.add_edge("greet", END)
