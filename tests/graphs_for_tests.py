"""Graphs that exist only to test the desk's failure handling (registered by conftest)."""

from __future__ import annotations

import asyncio
import operator
import os
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any

from langchain_core.runnables import RunnableLambda
from langchain_core.tools import StructuredTool
from langgraph.graph import START, StateGraph
from pydantic import BaseModel
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


# --- async nodes: LangGraph runs these only through ainvoke ------------------------------------


async def _async_prepare(state: State) -> State:
    await asyncio.sleep(0)
    return {"done": False}


async def _async_ask(state: State) -> State:
    from langgraph.types import interrupt

    await asyncio.sleep(0)
    return {"answer": interrupt("An async node asks: continue?")}


async_builder = StateGraph(State)
async_builder.add_node("async_prepare", _async_prepare)
async_builder.add_node("async_ask", _async_ask)
async_builder.add_node("finish", _finish)  # a sync node in an async graph
async_builder.add_edge(START, "async_prepare")
async_builder.add_edge("async_prepare", "async_ask")
async_builder.add_edge("async_ask", "finish")
async_nodes = async_builder


class ToolState(TypedDict, total=False):
    text: str
    answer: Any
    done: bool


async def _shout(text: str) -> str:
    """Upper-case the text (a tool that only has an async implementation)."""
    return text.upper()


# A LangChain composition whose sync path fails only when it runs ("StructuredTool does not
# support sync invocation"): nothing in the graph's structure says it is async-only.
shout_tool = StructuredTool.from_function(coroutine=_shout, name="shout", description="Shout.")


def _ask_after_tool(state: ToolState) -> ToolState:
    from langgraph.types import interrupt

    return {"answer": interrupt(f"The tool said {state['text']}. Fine?")}


async_tool_builder = StateGraph(ToolState)
async_tool_builder.add_node("shout", shout_tool | RunnableLambda(lambda out: {"text": out}))
async_tool_builder.add_node("ask", _ask_after_tool)
async_tool_builder.add_node("finish", _finish)
async_tool_builder.add_edge(START, "shout")
async_tool_builder.add_edge("shout", "ask")
async_tool_builder.add_edge("ask", "finish")
async_tool = async_tool_builder


# --- static breakpoints ------------------------------------------------------------------------


class DraftState(TypedDict, total=False):
    draft: str
    edits: Annotated[list[str], operator.add]
    published: Annotated[list[str], operator.add]


def _write(state: DraftState) -> DraftState:
    return {"draft": state.get("draft") or "first draft"}


def _publish(state: DraftState) -> DraftState:
    """The side effect a breakpoint guards: appended once per run of this node."""
    return {"published": [state["draft"]]}


breakpoint_builder = StateGraph(DraftState)
breakpoint_builder.add_node("write", _write)
breakpoint_builder.add_node("publish", _publish)
breakpoint_builder.add_edge(START, "write")
breakpoint_builder.add_edge("write", "publish")
# Compiled by the user without a checkpointer, as LangGraph's docs show: the desk attaches its own.
breakpoint_before = breakpoint_builder.compile(interrupt_before=["publish"])
breakpoint_after = breakpoint_builder.compile(interrupt_after=["write"])


# --- state that keeps Pydantic models and dataclasses --------------------------------------------


class Order(BaseModel):
    sku: str
    quantity: int


@dataclass
class Note:
    text: str


class TypedState(TypedDict, total=False):
    order: Order
    note: Note
    answer: Any


def _take_order(state: TypedState) -> TypedState:
    return {"order": Order(sku="A-1", quantity=3), "note": Note("fragile")}


def _confirm_order(state: TypedState) -> TypedState:
    from langgraph.types import interrupt

    # Attribute access: a checkpointer that handed back plain dicts would fail here.
    order, note = state["order"], state["note"]
    return {"answer": interrupt(f"Ship {order.quantity} x {order.sku} ({note.text})?")}


typed_builder = StateGraph(TypedState)
typed_builder.add_node("take_order", _take_order)
typed_builder.add_node("confirm_order", _confirm_order)
typed_builder.add_edge(START, "take_order")
typed_builder.add_edge("take_order", "confirm_order")
typed_state = typed_builder


# --- a value PostgreSQL's jsonb cannot store as is ---------------------------------------------


def _ask_with_nul(state: State) -> State:
    from langgraph.types import interrupt

    return {"answer": interrupt({"question": "Keep\u0000this?", "key\u0000": ["a\u0000b"]})}


nul_builder = StateGraph(State)
nul_builder.add_node("ask_with_nul", _ask_with_nul)
nul_builder.add_node("finish", _finish)
nul_builder.add_edge(START, "ask_with_nul")
nul_builder.add_edge("ask_with_nul", "finish")
nul_value = nul_builder


# --- two parallel questions, one of whose resumes waits on the test --------------------------

# Set by a test to let a resumed "gated_first" finish; the run holds the mutex until then.
GATE = threading.Event()


class GateState(TypedDict, total=False):
    first: Any
    second: Any
    done: bool


def _gated_first(state: GateState) -> GateState:
    from langgraph.types import interrupt

    answer = interrupt("First question?")
    GATE.wait(60)
    return {"first": answer}


def _gated_second(state: GateState) -> GateState:
    from langgraph.types import interrupt

    return {"second": interrupt("Second question?")}


def _gated_finish(state: GateState) -> GateState:
    return {"done": True}


gated_builder = StateGraph(GateState)
gated_builder.add_node("gated_first", _gated_first)
gated_builder.add_node("gated_second", _gated_second)
gated_builder.add_node("gated_finish", _gated_finish)
gated_builder.add_edge(START, "gated_first")
gated_builder.add_edge(START, "gated_second")
gated_builder.add_edge(["gated_first", "gated_second"], "gated_finish")
gated = gated_builder

GRAPHS = {
    "slow": "tests.graphs_for_tests:slow",
    "brittle": "tests.graphs_for_tests:brittle",
    "async_nodes": "tests.graphs_for_tests:async_nodes",
    "async_tool": "tests.graphs_for_tests:async_tool",
    "breakpoint_before": "tests.graphs_for_tests:breakpoint_before",
    "breakpoint_after": "tests.graphs_for_tests:breakpoint_after",
    "typed_state": "tests.graphs_for_tests:typed_state",
    "nul_value": "tests.graphs_for_tests:nul_value",
    "gated": "tests.graphs_for_tests:gated",
}


# --- workbench: one graph per interrupt convention the item page draws ---------------------------

ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Order",
    "properties": {
        "quantity": {"type": "integer", "minimum": 1, "description": "How many to **ship**."},
        "speed": {"enum": ["standard", "express"], "default": "standard"},
        "gift": {"type": "boolean"},
        "note": {"type": "string", "description": "For the courier."},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["city"],
        },
        "payment": {
            "oneOf": [
                {
                    "type": "object",
                    "title": "Card",
                    "properties": {"method": {"const": "card"}, "last4": {"type": "string"}},
                    "required": ["method", "last4"],
                },
                {
                    "type": "object",
                    "title": "Invoice",
                    "properties": {"method": {"const": "invoice"}, "days": {"type": "integer"}},
                    "required": ["method"],
                },
            ],
            "discriminator": {"propertyName": "method"},
        },
    },
    "required": ["quantity", "gift", "address", "payment"],
}


def _ask_order(state: State) -> State:
    from langgraph.types import interrupt

    return {
        "answer": interrupt(
            {"question": "How should we ship order 42?"}, response_schema=ORDER_SCHEMA
        )
    }


schema_form_builder = StateGraph(State)
schema_form_builder.add_node("ask_order", _ask_order)
schema_form_builder.add_edge(START, "ask_order")
schema_form = schema_form_builder


def _ask_yes_no(state: State) -> State:
    from langgraph.types import interrupt

    return {"answer": interrupt("Deploy to production?", response_schema={"type": "boolean"})}


yes_no_builder = StateGraph(State)
yes_no_builder.add_node("ask_deploy", _ask_yes_no)
yes_no_builder.add_edge(START, "ask_deploy")
yes_no = yes_no_builder


def _ask_inbox(state: State) -> State:
    from langgraph.types import interrupt

    request = {
        "action_request": {"action": "run_shell", "args": {"command": "ls -l", "cwd": "/tmp"}},
        "config": {
            "allow_accept": True,
            "allow_edit": True,
            "allow_respond": True,
            "allow_ignore": True,
        },
        "description": "Run `ls -l` in **/tmp**?",
    }
    return {"answer": interrupt([request])[0]}


agent_inbox_builder = StateGraph(State)
agent_inbox_builder.add_node("ask_inbox", _ask_inbox)
agent_inbox_builder.add_edge(START, "ask_inbox")
agent_inbox = agent_inbox_builder


def _per_call_agent() -> Any:
    from langchain.agents import create_agent
    from langchain.agents.middleware import HumanInTheLoopMiddleware
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.tools import tool

    from graphs._scripted import ScriptedChatModel

    @tool
    def refund(order: str, amount: int, reason: str) -> str:
        """Refund an order."""
        return f"Refunded {amount} on {order} ({reason})."

    def script(messages: Any) -> AIMessage:
        last = messages[-1] if messages else None
        if isinstance(last, ToolMessage):
            return AIMessage(content=f"Outcome: {last.content}")
        if isinstance(last, HumanMessage):
            call = {
                "name": "refund",
                "args": {"order": "A-1", "amount": 30, "reason": "late"},
                "id": f"call_{len(messages)}",
                "type": "tool_call",
            }
            return AIMessage(content="", tool_calls=[call])
        return AIMessage(content="?")

    return create_agent(
        ScriptedChatModel(script=script),
        tools=[refund],
        middleware=[
            HumanInTheLoopMiddleware(
                interrupt_on={"refund": {"allowed_decisions": ["approve", "edit", "reject"]}},
                interrupt_mode="per_call",
            )
        ],
    )


per_call_agent = _per_call_agent()

GRAPHS.update(
    {
        "schema_form": "tests.graphs_for_tests:schema_form",
        "yes_no": "tests.graphs_for_tests:yes_no",
        "agent_inbox": "tests.graphs_for_tests:agent_inbox",
        "per_call_agent": "tests.graphs_for_tests:per_call_agent",
    }
)


# --- history: three questions in a row, then a summary ----------------------------------------


class SurveyState(TypedDict, total=False):
    name: Any
    colour: Any
    confirmed: Any
    summary: str


def _ask_name(state: SurveyState) -> SurveyState:
    from langgraph.types import interrupt

    return {"name": interrupt("What is your name?")}


def _ask_colour(state: SurveyState) -> SurveyState:
    from langgraph.types import interrupt

    return {"colour": interrupt(f"Favourite colour, {state.get('name')}?")}


def _ask_confirm(state: SurveyState) -> SurveyState:
    from langgraph.types import interrupt

    return {"confirmed": interrupt({"question": "Confirm?", "colour": state.get("colour")})}


def _summarise(state: SurveyState) -> SurveyState:
    return {"summary": f"{state.get('name')} likes {state.get('colour')}"}


survey_builder = StateGraph(SurveyState)
for _name, _node in [
    ("ask_name", _ask_name),
    ("ask_colour", _ask_colour),
    ("ask_confirm", _ask_confirm),
    ("summarise", _summarise),
]:
    survey_builder.add_node(_name, _node)
survey_builder.add_edge(START, "ask_name")
survey_builder.add_edge("ask_name", "ask_colour")
survey_builder.add_edge("ask_colour", "ask_confirm")
survey_builder.add_edge("ask_confirm", "summarise")
survey = survey_builder

GRAPHS["survey"] = "tests.graphs_for_tests:survey"
