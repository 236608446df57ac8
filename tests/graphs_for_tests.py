"""Graphs that exist only to test the desk's failure handling (registered by conftest)."""

from __future__ import annotations

import os
import time
from typing import Any

from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    answer: Any
    done: bool


def _slow_ask(state: State) -> State:
    """Sleep (so a test can kill the worker mid-run), then ask."""
    from langgraph.types import interrupt

    time.sleep(float(os.environ.get("REVIEWDESK_TEST_SLOW_SECONDS", "0")))
    return {"answer": interrupt("Continue after the slow step?")}


def _finish(state: State) -> State:
    return {"done": True}


slow_builder = StateGraph(State)
slow_builder.add_node("slow_ask", _slow_ask)
slow_builder.add_node("finish", _finish)
slow_builder.add_edge(START, "slow_ask")
slow_builder.add_edge("slow_ask", "finish")
slow = slow_builder


def _brittle_ask(state: State) -> State:
    """Raises on the answer "boom" after interrupt() returned it: the sticky-answer trap."""
    from langgraph.types import interrupt

    answer = interrupt("Say anything but boom.")
    if answer == "boom":
        raise ValueError("the node refused the answer 'boom'")
    return {"answer": answer}


brittle_builder = StateGraph(State)
brittle_builder.add_node("brittle_ask", _brittle_ask)
brittle_builder.add_node("finish", _finish)
brittle_builder.add_edge(START, "brittle_ask")
brittle_builder.add_edge("brittle_ask", "finish")
brittle = brittle_builder

GRAPHS = {"slow": "tests.graphs_for_tests:slow", "brittle": "tests.graphs_for_tests:brittle"}
