"""The demo graphs driven as the desk drives them: pure LangGraph, InMemorySaver, no Django."""

from __future__ import annotations

import ast
import asyncio
import importlib
import json
import pkgutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.types import Command

import graphs
from graphs import _scripted, age, agent, chatbot, parallel_approval
from graphs._scripted import ScriptedChatModel

GRAPH_MODULES = [chatbot, age, parallel_approval, agent]


def compile_graph(module: ModuleType) -> Pregel:
    """Attach a checkpointer exactly as the desk does, for either form of `graph`."""
    saver = InMemorySaver()
    if isinstance(module.graph, StateGraph):
        return module.graph.compile(checkpointer=saver)
    return module.graph.copy(update={"checkpointer": saver})


def new_config() -> dict[str, Any]:
    return {"configurable": {"thread_id": str(uuid.uuid4())}}


def pending(app: Pregel, config: dict[str, Any]) -> dict[str, Any]:
    """Pending interrupts as {id: value}."""
    return {i.id: i.value for i in app.get_state(config).interrupts}


def only_pending(app: Pregel, config: dict[str, Any]) -> tuple[str, Any]:
    (item,) = pending(app, config).items()
    return item


def answer(app: Pregel, config: dict[str, Any], answers: dict[str, Any]) -> None:
    """Resume with an id map, as the desk always does."""
    app.invoke(Command(resume=answers), config)


def assert_finished(app: Pregel, config: dict[str, Any]) -> dict[str, Any]:
    snapshot = app.get_state(config)
    assert not snapshot.tasks
    assert not snapshot.interrupts
    assert snapshot.next == ()
    return snapshot.values


# --- the module contract --------------------------------------------------------------------


def test_registry_finds_exactly_the_graph_modules() -> None:
    names = {m.name for m in pkgutil.iter_modules(graphs.__path__)}
    public = {n for n in names if not n.startswith("_")}
    assert public == {m.__name__.rsplit(".", 1)[1] for m in GRAPH_MODULES}
    for helper in names - public:
        assert not hasattr(importlib.import_module(f"graphs.{helper}"), "graph")


@pytest.mark.parametrize("module", GRAPH_MODULES, ids=lambda m: m.__name__)
def test_module_contract(module: ModuleType) -> None:
    assert module.__doc__ and module.__doc__.splitlines()[0].strip()
    json.dumps(module.EXAMPLE_INPUT)
    if not isinstance(module.graph, StateGraph):
        assert module.graph.checkpointer is None
    app = compile_graph(module)
    config = new_config()
    app.invoke(module.EXAMPLE_INPUT, config)
    interrupts = app.get_state(config).interrupts
    assert interrupts
    for item in interrupts:
        json.dumps(item.value)


def test_graph_modules_do_not_import_django() -> None:
    for path in Path(graphs.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            assert not any(m.split(".")[0] == "django" for m in modules), path


def test_copy_with_checkpointer_leaves_the_shared_agent_graph_untouched() -> None:
    app = compile_graph(agent)
    assert isinstance(app.checkpointer, InMemorySaver)
    assert agent.graph.checkpointer is None


# --- chatbot --------------------------------------------------------------------------------


def test_chatbot_passes_the_human_answer_to_the_user() -> None:
    app = compile_graph(chatbot)
    config = new_config()
    result = app.invoke(chatbot.EXAMPLE_INPUT, config)
    assert result["__interrupt__"]
    interrupt_id, value = only_pending(app, config)
    assert set(value) == {"query"}
    assert "AI agent" in value["query"]
    assert app.get_state(config).next == ("tools",)

    expert = "We, the experts are here to help! Check out LangGraph."
    answer(app, config, {interrupt_id: {"data": expert}})

    messages = assert_finished(app, config)["messages"]
    tool_message, final = messages[-2], messages[-1]
    assert isinstance(tool_message, ToolMessage)
    assert tool_message.content == expert
    assert isinstance(final, AIMessage)
    assert not final.tool_calls
    assert expert in final.content


# --- age ------------------------------------------------------------------------------------


@pytest.mark.parametrize("valid", [42, "42", " 42 "])
def test_age_reasks_with_a_new_id_until_valid(valid: Any) -> None:
    app = compile_graph(age)
    config = new_config()
    app.invoke(age.EXAMPLE_INPUT, config)
    first_id, first_question = only_pending(app, config)
    assert first_question == "What is your age?"

    answer(app, config, {first_id: "abc"})
    second_id, second_question = only_pending(app, config)
    assert second_id != first_id
    assert second_question == "'abc' is not a valid age. What is your age?"

    answer(app, config, {second_id: -3})
    third_id, third_question = only_pending(app, config)
    assert third_id not in {first_id, second_id}
    assert third_question == "-3 is not a valid age. What is your age?"

    answer(app, config, {third_id: valid})
    values = assert_finished(app, config)
    assert values["age"] == 42
    assert values["greeting"] == "Hello Ada, you are 42 years old."


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0, 0),
        ("7", 7),
        (True, None),
        (False, None),
        (-1, None),
        ("-1", None),
        ("+4", None),
        ("4.0", None),
        (4.0, None),
        ("²", None),
        ("", None),
        (None, None),
        ({"age": 4}, None),
        (10**30, None),
    ],
)
def test_parse_age(raw: Any, expected: int | None) -> None:
    assert age.parse_age(raw) == expected


# --- parallel approval ----------------------------------------------------------------------


def start_approval(app: Pregel, config: dict[str, Any]) -> dict[str, str]:
    """Run to the two questions; return {reviewer_role: interrupt_id}."""
    app.invoke(parallel_approval.EXAMPLE_INPUT, config)
    questions = pending(app, config)
    assert len(questions) == 2
    by_role = {value["reviewer_role"]: interrupt_id for interrupt_id, value in questions.items()}
    assert set(by_role) == {"legal", "brand"}
    for value in questions.values():
        assert value["question"] == f"Approve this draft for {value['reviewer_role']}?"
        assert value["draft"].startswith("Announcing our Friday product launch")
    return by_role


def test_parallel_answers_one_at_a_time_publish_once() -> None:
    app = compile_graph(parallel_approval)
    config = new_config()
    ids = start_approval(app, config)

    answer(app, config, {ids["legal"]: {"approved": True, "comment": "Fine by legal."}})
    assert pending(app, config).keys() == {ids["brand"]}
    snapshot = app.get_state(config)
    assert snapshot.next == ("brand_review",)
    assert snapshot.values["published"] == []
    assert "status" not in snapshot.values

    answer(app, config, {ids["brand"]: "approve"})
    values = assert_finished(app, config)
    assert values["status"] == "published"
    assert len(values["published"]) == 1
    entry = values["published"][0]
    assert sorted(entry["approved_by"]) == ["brand", "legal"]
    assert entry["comments"] == {"legal": "Fine by legal."}


def test_parallel_batched_answers_publish_once() -> None:
    app = compile_graph(parallel_approval)
    config = new_config()
    ids = start_approval(app, config)
    answer(app, config, {ids["legal"]: True, ids["brand"]: {"approved": "yes"}})
    values = assert_finished(app, config)
    assert values["status"] == "published"
    assert len(values["published"]) == 1


def test_parallel_rejection_publishes_nothing() -> None:
    app = compile_graph(parallel_approval)
    config = new_config()
    ids = start_approval(app, config)
    answer(app, config, {ids["brand"]: {"approved": False, "comment": "Off brand."}})
    answer(app, config, {ids["legal"]: "yes"})
    values = assert_finished(app, config)
    assert values["status"] == "rejected"
    assert values["rejected_by"] == ["brand"]
    assert values["published"] == []
    assert {"reviewer_role": "brand", "approved": False, "comment": "Off brand."} in values[
        "reviews"
    ]


def test_parallel_unclear_answer_is_asked_again_in_the_same_branch() -> None:
    app = compile_graph(parallel_approval)
    config = new_config()
    ids = start_approval(app, config)
    answer(app, config, {ids["legal"]: "maybe"})
    questions = pending(app, config)
    assert len(questions) == 2
    assert ids["brand"] in questions
    assert ids["legal"] not in questions
    ((retry_id, retry),) = [(k, v) for k, v in questions.items() if k != ids["brand"]]
    assert retry["reviewer_role"] == "legal"
    assert retry["question"] == "'maybe' is not a yes or no. Approve this draft for legal?"

    answer(app, config, {retry_id: "no", ids["brand"]: "yes"})
    values = assert_finished(app, config)
    assert values["status"] == "rejected"
    assert values["rejected_by"] == ["legal"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, {"approved": True, "comment": ""}),
        (False, {"approved": False, "comment": ""}),
        (" Yes ", {"approved": True, "comment": ""}),
        ("REJECT", {"approved": False, "comment": ""}),
        ({"approved": True}, {"approved": True, "comment": ""}),
        ({"approved": False, "comment": "No."}, {"approved": False, "comment": "No."}),
        ({"approved": "no", "comment": None}, {"approved": False, "comment": ""}),
        ("maybe", None),
        ({"comment": "?"}, None),
        (1, None),
        (None, None),
    ],
)
def test_parse_decision(raw: Any, expected: dict[str, Any] | None) -> None:
    assert parallel_approval.parse_decision(raw) == expected


# --- agent ----------------------------------------------------------------------------------


def start_agent(app: Pregel, config: dict[str, Any], request: str) -> tuple[str, dict[str, Any]]:
    app.invoke({"messages": [{"role": "user", "content": request}]}, config)
    interrupt_id, value = only_pending(app, config)
    assert set(value) == {"action_requests", "review_configs"}
    return interrupt_id, value


def test_agent_interrupt_value() -> None:
    app = compile_graph(agent)
    _, value = start_agent(app, new_config(), agent.EXAMPLE_INPUT["messages"][0]["content"])
    (action,) = value["action_requests"]
    assert action["name"] == "send_email"
    assert action["args"]["to"] == "alice@example.com"
    assert action["args"]["subject"] == "Confirm Friday's launch"
    assert "I'm writing to confirm Friday's launch." in action["args"]["body"]
    assert action["description"] == (
        'Send an email to alice@example.com with subject "Confirm Friday\'s launch"?'
    )
    assert value["review_configs"] == [
        {"action_name": "send_email", "allowed_decisions": ["approve", "edit", "reject", "respond"]}
    ]


EDITED_ARGS = {"to": "bob@example.com", "subject": "Launch moved", "body": "Now on Monday."}


@pytest.mark.parametrize(
    ("decision", "tool_result", "final"),
    [
        (
            {"type": "approve"},
            'Email sent to alice@example.com with subject "Confirm Friday\'s launch"',
            "Done. Email sent to alice@example.com",
        ),
        (
            {"type": "edit", "edited_action": {"name": "send_email", "args": EDITED_ARGS}},
            "Email sent to bob@example.com with subject 'Launch moved' (14 characters).",
            "A reviewer edited the email, then it went out. Email sent to bob@example.com",
        ),
        (
            {"type": "reject", "message": "Wait until legal signs off."},
            "Wait until legal signs off.",
            "I did not send the email. User rejected the tool call",
        ),
        (
            {"type": "respond", "message": "I already told Alice in person."},
            "I already told Alice in person.",
            "A reviewer answered instead of sending the email: I already told Alice in person.",
        ),
    ],
    ids=["approve", "edit", "reject", "respond"],
)
def test_agent_decisions_run_to_completion(
    decision: dict[str, Any], tool_result: str, final: str
) -> None:
    app = compile_graph(agent)
    config = new_config()
    interrupt_id, _ = start_agent(app, config, agent.EXAMPLE_INPUT["messages"][0]["content"])
    answer(app, config, {interrupt_id: {"decisions": [decision]}})

    messages = assert_finished(app, config)["messages"]
    tool_message, last = messages[-2], messages[-1]
    assert isinstance(tool_message, ToolMessage)
    assert tool_result in tool_message.content
    assert isinstance(last, AIMessage)
    assert not last.tool_calls
    assert last.content.startswith(final)


def test_agent_email_args() -> None:
    assert agent.email_args("Email bob.smith@example.org about the budget!") == {
        "to": "bob.smith@example.org",
        "subject": "The budget",
        "body": "Hi Bob,\n\nI'm writing about the budget.\n\nBest regards",
    }
    assert agent.email_args("Say hi") == {
        "to": "team@example.com",
        "subject": "Say hi",
        "body": "Hi Team,\n\nSay hi.\n\nBest regards",
    }


# --- sharing one graph across threads -------------------------------------------------------


def test_interleaved_threads_are_independent() -> None:
    app = compile_graph(chatbot)
    first, second = new_config(), new_config()
    app.invoke({"messages": [{"role": "user", "content": "Help with A"}]}, first)
    app.invoke({"messages": [{"role": "user", "content": "Help with B"}]}, second)
    first_id, first_value = only_pending(app, first)
    second_id, second_value = only_pending(app, second)
    assert first_value["query"].endswith("Help with A")
    assert second_value["query"].endswith("Help with B")

    answer(app, second, {second_id: {"data": "Answer B"}})
    answer(app, first, {first_id: {"data": "Answer A"}})
    assert "Answer A" in assert_finished(app, first)["messages"][-1].content
    assert "Answer B" in assert_finished(app, second)["messages"][-1].content

    # A second compiled copy of the same module-level graph shares no run state either.
    other = compile_graph(age)
    again = compile_graph(age)
    one, two = new_config(), new_config()
    other.invoke({"name": "One"}, one)
    again.invoke({"name": "Two"}, two)
    answer(other, one, {only_pending(other, one)[0]: 1})
    answer(again, two, {only_pending(again, two)[0]: 2})
    assert assert_finished(other, one)["greeting"] == "Hello One, you are 1 years old."
    assert assert_finished(again, two)["greeting"] == "Hello Two, you are 2 years old."


def test_concurrent_agent_runs_in_one_process() -> None:
    app = compile_graph(agent)

    def run(n: int) -> str:
        config = new_config()
        interrupt_id, value = start_agent(app, config, f"Email user{n}@example.com to say hi {n}.")
        assert value["action_requests"][0]["args"]["to"] == f"user{n}@example.com"
        answer(app, config, {interrupt_id: {"decisions": [{"type": "approve"}]}})
        return assert_finished(app, config)["messages"][-1].content

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, range(16)))
    for n, text in enumerate(results):
        assert f"Email sent to user{n}@example.com" in text


def test_agent_runs_async() -> None:
    """Workers invoke synchronously, but an async caller must not hit a sync-only hook."""
    app = compile_graph(agent)
    config = new_config()

    async def run() -> str:
        await app.ainvoke(agent.EXAMPLE_INPUT, config)
        (question,) = (await app.aget_state(config)).interrupts
        decisions = {"decisions": [{"type": "approve"}]}
        await app.ainvoke(Command(resume={question.id: decisions}), config)
        return (await app.aget_state(config)).values["messages"][-1].content

    assert asyncio.run(run()).startswith("Done. Email sent to alice@example.com")


# --- a real model instead of the script -----------------------------------------------------


@pytest.mark.parametrize("module", [chatbot, agent], ids=lambda m: m.__name__)
def test_configured_model_replaces_the_script(
    module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    def live_chat_model(name: str) -> ScriptedChatModel:
        assert name == "test:live"
        return ScriptedChatModel(script=lambda messages: AIMessage(content="live reply"))

    monkeypatch.setenv(_scripted.CHAT_MODEL_ENV, "test:live")
    monkeypatch.setattr(_scripted, "live_chat_model", live_chat_model)
    app = compile_graph(module)
    config = new_config()
    app.invoke(module.EXAMPLE_INPUT, config)
    assert assert_finished(app, config)["messages"][-1].content == "live reply"
