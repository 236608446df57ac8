"""Chatbot that asks a human expert for help through its human_assistance tool.

The LangGraph tutorial's chatbot ("Add human-in-the-loop controls"), without web search. The
question is `{"query": "..."}` and the answer is `{"data": "..."}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import interrupt
from typing_extensions import TypedDict

from graphs._scripted import ScriptedChatModel, configured_chat_model, text_of, tool_call_id

EXAMPLE_INPUT: dict[str, Any] = {
    "messages": [
        {
            "role": "user",
            "content": (
                "I need some expert guidance for building an AI agent. "
                "Could you request assistance for me?"
            ),
        }
    ]
}

# How reviewdesk answers human_assistance (read by the desk; the tool stays as the tutorial
# wrote it): the reviewer types plain text and the graph receives {"data": text}.
REVIEW_FORMS: dict[str, dict[str, Any]] = {
    "tools": {
        "schema": {
            "type": "object",
            "properties": {
                "data": {
                    "type": "string",
                    "title": "Your reply",
                    "description": "Sent to the model as the expert's answer.",
                }
            },
            "required": ["data"],
        }
    }
}


class State(TypedDict):
    messages: Annotated[list, add_messages]


@tool
def human_assistance(query: str) -> str:
    """Request assistance from a human."""
    human_response = interrupt({"query": query})
    return human_response["data"]


tools = [human_assistance]


def _script(messages: Sequence[BaseMessage]) -> AIMessage:
    """Ask a human about the user's latest request, then pass the human's answer on."""
    last = messages[-1] if messages else None
    if isinstance(last, ToolMessage):
        return AIMessage(content=f"Here is what the expert said: {text_of(last)}")
    if isinstance(last, HumanMessage):
        request = text_of(last).strip()
        return AIMessage(
            content="Let me ask a human expert for you.",
            tool_calls=[
                {
                    "name": "human_assistance",
                    "args": {"query": f"A user is asking for expert help: {request}"},
                    "id": tool_call_id(messages),
                    "type": "tool_call",
                }
            ],
        )
    return AIMessage(content="How can I help you?")


scripted_llm = ScriptedChatModel(script=_script)


def chatbot(state: State) -> dict[str, list]:
    """Call the model; the live one is chosen per call so the env var can change per worker."""
    llm = configured_chat_model() or scripted_llm
    message = llm.bind_tools(tools).invoke(state["messages"])
    # As in the tutorial: the tools node re-runs from the start on resume, and several
    # interrupting calls in one message would be re-run and misrouted.
    assert len(message.tool_calls) <= 1
    return {"messages": [message]}


graph = StateGraph(State)
graph.add_node("chatbot", chatbot)
graph.add_node("tools", ToolNode(tools=tools))
graph.add_conditional_edges("chatbot", tools_condition)
graph.add_edge("tools", "chatbot")
graph.add_edge(START, "chatbot")
