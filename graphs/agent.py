"""Email agent whose send_email calls wait for a human to approve, edit, reject or respond.

A LangChain `create_agent` with `HumanInTheLoopMiddleware` (batched). The question is
`{"action_requests": [...], "review_configs": [...]}`; answer `{"decisions": [...]}` with one
decision per action, in order: `{"type": "approve"}`, `{"type": "edit", "edited_action":
{"name": "send_email", "args": {...}}}`, `{"type": "reject", "message": "..."}` or
`{"type": "respond", "message": "..."}`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import (
    AgentMiddleware,
    HumanInTheLoopMiddleware,
    ModelRequest,
    ModelResponse,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolCall, ToolMessage
from langchain_core.tools import tool

from graphs._scripted import ScriptedChatModel, configured_chat_model, text_of, tool_call_id

EXAMPLE_INPUT: dict[str, Any] = {
    "messages": [{"role": "user", "content": "Email alice@example.com to confirm Friday's launch."}]
}

# Prepended by the middleware to the result of an edited call; the script looks for it.
EDIT_NOTICE = "A human reviewer edited this email before it was sent."
SENT = "Email sent to"

_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


@tool
def send_email(to: str, subject: str, body: str) -> str:
    """Send an email. (A demo: nothing leaves the process.)"""
    return f"{SENT} {to} with subject {subject!r} ({len(body)} characters)."


tools = [send_email]


def email_args(request: str) -> dict[str, str]:
    """Draft send_email arguments from a request such as 'Email bob@x.com to confirm lunch.'."""
    match = _ADDRESS.search(request)
    to = match.group(0) if match else "team@example.com"
    rest = (request[match.end() :] if match else request).strip().rstrip(".!").strip()
    lead = re.match(r"(to|about|regarding)\s+", rest, flags=re.IGNORECASE)
    topic = (rest[lead.end() :] if lead else rest) or "hello"
    subject = topic[0].upper() + topic[1:]
    sentence = f"I'm writing {lead.group(1).lower()} {topic}." if lead else f"{subject}."
    name = to.split("@")[0].split(".")[0].capitalize()
    return {"to": to, "subject": subject, "body": f"Hi {name},\n\n{sentence}\n\nBest regards"}


def summarise(result: ToolMessage) -> str:
    """Final answer for each way a review can end: sent, edited then sent, rejected, responded."""
    text = text_of(result)
    if result.status == "error":
        return f"I did not send the email. {text}"
    if SENT in text:
        sent = text[text.rindex(SENT) :]
        if EDIT_NOTICE in text:
            return f"A reviewer edited the email, then it went out. {sent}"
        return f"Done. {sent}"
    return f"A reviewer answered instead of sending the email: {text}"


def _script(messages: Sequence[BaseMessage]) -> AIMessage:
    """Propose one send_email call for a new request; report the outcome after the tool."""
    last = messages[-1] if messages else None
    if isinstance(last, ToolMessage):
        return AIMessage(content=summarise(last))
    if isinstance(last, HumanMessage):
        call = ToolCall(
            name="send_email",
            args=email_args(text_of(last)),
            id=tool_call_id(messages),
            type="tool_call",
        )
        return AIMessage(content="I'll draft that email for review.", tool_calls=[call])
    return AIMessage(content="What would you like me to send?")


def _describe(tool_call: ToolCall, state: Any, runtime: Any) -> str:
    """The reviewer's prompt: who gets what, in words."""
    args = tool_call["args"]
    return f"Send an email to {args.get('to')} with subject {args.get('subject')!r}?"


class ConfiguredModelMiddleware(AgentMiddleware):
    """Swap in the model named by REVIEWDESK_CHAT_MODEL at call time, if one is set."""

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse:
        """Sync runs (the desk's workers)."""
        live = configured_chat_model()
        return handler(request.override(model=live) if live else request)

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse:
        """Async runs: without this override `ainvoke` raises NotImplementedError."""
        live = configured_chat_model()
        return await handler(request.override(model=live) if live else request)


graph = create_agent(
    ScriptedChatModel(script=_script),
    tools=tools,
    system_prompt="You send emails for the user with the send_email tool.",
    middleware=[
        HumanInTheLoopMiddleware(
            interrupt_on={
                "send_email": {
                    "allowed_decisions": ["approve", "edit", "reject", "respond"],
                    "description": _describe,
                }
            },
            edit_notice=EDIT_NOTICE,
        ),
        ConfiguredModelMiddleware(),
    ],
)
