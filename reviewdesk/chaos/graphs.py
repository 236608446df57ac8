"""Graphs the chaos run adds to the examples: a slow one and a ledger of side effects.

Registered in the children through REVIEWDESK_GRAPHS; no Django imports here, like graphs/.

`slow` thinks (sleeps like a model call) before and after its question, so kills land mid-run.
`ledger` asks LEDGER_STEPS questions, one task each; after each `interrupt()` returns it appends
one line (thread, interrupt id, step, answer, pid, time) to the file named by
REVIEWDESK_CHAOS_LEDGER with a single O_APPEND write. The ledger lives outside the database on
purpose: it records what the graph *did*, so an answer applied twice shows as two lines.
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any, NotRequired

from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict

LEDGER_ENV = "REVIEWDESK_CHAOS_LEDGER"
SLOW_ENV = "REVIEWDESK_CHAOS_SLOW_SECONDS"
LEDGER_STEPS = 3
# After the effect and before the node's checkpoint: a kill in here re-runs the node (by design).
EFFECT_TAIL_SECONDS = 0.2


def _think() -> None:
    """Sleep like a model call: between 0.5 and 1.5 times REVIEWDESK_CHAOS_SLOW_SECONDS."""
    base = float(os.environ.get(SLOW_ENV, "2"))
    time.sleep(base * random.uniform(0.5, 1.5))


# --- slow ----------------------------------------------------------------------------------------


class SlowState(TypedDict):
    answer: NotRequired[Any]
    done: NotRequired[bool]


def slow_think(state: SlowState) -> dict[str, Any]:
    _think()
    return {}


def slow_ask(state: SlowState) -> dict[str, Any]:
    return {"answer": interrupt("Continue after the slow step? (any answer)")}


def slow_act(state: SlowState) -> dict[str, Any]:
    _think()
    return {"done": True}


slow_builder = StateGraph(SlowState)
slow_builder.add_node("slow_think", slow_think)
slow_builder.add_node("slow_ask", slow_ask)
slow_builder.add_node("slow_act", slow_act)
slow_builder.add_edge(START, "slow_think")
slow_builder.add_edge("slow_think", "slow_ask")
slow_builder.add_edge("slow_ask", "slow_act")
slow_builder.add_edge("slow_act", END)
slow = slow_builder


# --- ledger --------------------------------------------------------------------------------------


class LedgerState(TypedDict):
    step: NotRequired[int]
    answers: NotRequired[list[Any]]


def _interrupt_id_of_this_task() -> str:
    """The id LangGraph gave this task's first interrupt (a hash of the task's namespace)."""
    try:
        from langgraph.types import _interrupt_id  # private: fall back to "" if it moves

        return _interrupt_id(get_config()["configurable"]["checkpoint_ns"], 0)
    except Exception:
        return ""


def record_effect(record: dict[str, Any]) -> None:
    """Append one line to the ledger with a single write (atomic for O_APPEND, < PIPE_BUF)."""
    path = os.environ.get(LEDGER_ENV)
    if not path:
        return
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def ledger_ask(state: LedgerState) -> Command:
    """Ask question `step`; once answered, record the side effect, then ask the next one."""
    step = state.get("step", 0)
    answer = interrupt({"ledger_step": step, "question": f"Ledger entry {step + 1}?"})
    record_effect(
        {
            "thread": get_config()["configurable"]["thread_id"],
            "interrupt": _interrupt_id_of_this_task(),
            "step": step,
            "answer": answer,
            "pid": os.getpid(),
            "t": time.time(),
        }
    )
    time.sleep(EFFECT_TAIL_SECONDS)
    update = {"step": step + 1, "answers": [*state.get("answers", []), answer]}
    return Command(goto="ledger_ask" if step + 1 < LEDGER_STEPS else END, update=update)


ledger_builder = StateGraph(LedgerState)
ledger_builder.add_node("ledger_ask", ledger_ask, destinations=("ledger_ask", END))
ledger_builder.add_edge(START, "ledger_ask")
ledger = ledger_builder

GRAPHS = {
    "chaos_slow": "reviewdesk.chaos.graphs:slow",
    "chaos_pooled": "reviewdesk.chaos.graphs:slow",  # the same graph, routed to prefork
    "chaos_ledger": "reviewdesk.chaos.graphs:ledger",
}
