"""The benchmark's graph: asks again after every answer, forever; optionally "thinks" first.

Registered for the bench only (``REVIEWDESK_GRAPHS={"bench_loop": "reviewdesk.bench.graph:graph"}``)
and loaded by file path by LangGraph's own server, so it imports nothing but LangGraph: no
Django, no reviewdesk. Input ``{"tag": "r3", "think": 2.0, "steps": 2}``: each question is
``"bench:<tag>:<n>"`` (a client watching the queue recognises its own thread's next question by
it); with ``think``, every question is preceded by ``steps`` steps that each wait ``think``
seconds, as a model call would.
"""

from __future__ import annotations

import time
from typing import Any, NotRequired

from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    tag: NotRequired[str]
    think: NotRequired[float]
    steps: NotRequired[int]
    asked: NotRequired[int]  # questions asked so far
    thought: NotRequired[int]  # model steps taken since the last question
    answer: NotRequired[Any]


def question(tag: str, n: int) -> str:
    """The text of a thread's n-th question (n from 1)."""
    return f"bench:{tag}:{n}"


def ask(state: State) -> Command:
    n = state.get("asked", 0) + 1
    answer = interrupt(question(state.get("tag", ""), n))
    # Without a model step the loop is one node, so a cycle is LangGraph's minimum: one resume
    # step, one step that interrupts.
    nxt = "think" if state.get("think") else "ask"
    return Command(goto=nxt, update={"asked": n, "answer": answer, "thought": 0})


def think(state: State) -> Command:
    time.sleep(float(state.get("think") or 0))
    done = state.get("thought", 0) + 1
    return Command(
        goto="ask" if done >= max(1, state.get("steps", 1)) else "think", update={"thought": done}
    )


def _start(state: State) -> str:
    return "think" if state.get("think") else "ask"


graph = StateGraph(State)
graph.add_node("ask", ask, destinations=("ask", "think"))
graph.add_node("think", think, destinations=("ask", "think"))
graph.add_conditional_edges(START, _start, ["ask", "think"])
