"""Offline chat models for the demo graphs: replies are a pure function of the conversation."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

# Set to a provider:model string (e.g. "openai:gpt-4.1") to run the demos against a real model.
CHAT_MODEL_ENV = "REVIEWDESK_CHAT_MODEL"

Script = Callable[[Sequence[BaseMessage]], AIMessage]


class ScriptedChatModel(BaseChatModel):
    """A chat model whose reply depends only on the messages it is given.

    Holding no per-call state keeps one instance safe to share across threads, concurrent
    runs and re-runs of a node after a resume.
    """

    script: Script

    @property
    def _llm_type(self) -> str:
        return "reviewdesk-scripted"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        """Ask the script; the stop words and run manager have nothing to act on."""
        return ChatResult(generations=[ChatGeneration(message=self.script(messages))])

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        """Return self: the script already knows which tools its graph offers."""
        return self


@lru_cache(maxsize=8)
def live_chat_model(name: str) -> BaseChatModel:
    """Build a real chat model once per name, so a worker reuses its client."""
    from langchain.chat_models import init_chat_model

    return init_chat_model(name)


def configured_chat_model() -> BaseChatModel | None:
    """The real model named by the environment, read at call time so tests never need a key."""
    name = os.environ.get(CHAT_MODEL_ENV, "").strip()
    return live_chat_model(name) if name else None


def tool_call_id(messages: Sequence[BaseMessage]) -> str:
    """A tool call id that is stable across re-runs and unique within one conversation."""
    return f"call_{len(messages)}"


def text_of(message: BaseMessage) -> str:
    """Plain text of a message, whether its content is a string or a list of blocks."""
    content = message.content
    if isinstance(content, str):
        return content
    parts = [
        block if isinstance(block, str) else str(block.get("text", ""))
        for block in content
        if isinstance(block, str) or block.get("type") == "text"
    ]
    return "".join(parts)
