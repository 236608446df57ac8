"""Registry of the graphs the desk can run, discovered from graphs/ and settings.

A module of the graphs package that defines a module-level ``graph`` (a ``StateGraph`` builder or a
graph compiled without a checkpointer) is registered under the module's name;
``settings.REVIEWDESK_GRAPHS`` maps extra names to ``"module.path:attribute"`` as ``langgraph.json``
does. Graphs are used unchanged: the desk attaches its own checkpointer, allowed to deserialise
exactly the types the graph's state schema names, and runs the graph the way LangGraph can run it
(``invoke`` when every node has a sync path, ``ainvoke`` on the engine loop otherwise).
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from django.conf import settings
from langchain_core.runnables import Runnable, RunnableLambda, RunnableSequence
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from reviewdesk.engine import checkpoint


class UnknownGraph(LookupError):
    """No graph is registered under that name."""


@dataclass(frozen=True)
class GraphSpec:
    name: str
    target: str  # "module:attribute"
    description: str
    example_input: Any  # None: the module has no EXAMPLE_INPUT, so no demo and no pre-fill


@cache
def graph_specs() -> dict[str, GraphSpec]:
    """Every registered graph by name, discovered once per process."""
    specs: dict[str, GraphSpec] = {}
    package = importlib.import_module(settings.REVIEWDESK_GRAPHS_PACKAGE)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if _is_graph(getattr(module, "graph", None)):
            specs[info.name] = _spec(info.name, f"{module.__name__}:graph", module)
    for name, target in settings.REVIEWDESK_GRAPHS.items():
        module_path, _, attribute = target.partition(":")
        module = importlib.import_module(module_path)
        if not _is_graph(getattr(module, attribute or "graph", None)):
            raise TypeError(f"REVIEWDESK_GRAPHS[{name!r}] = {target!r} is not a LangGraph graph")
        specs[name] = _spec(name, f"{module_path}:{attribute or 'graph'}", module)
    return specs


def graph_get(name: str, *, asynchronous: bool = False) -> Pregel:
    """The named graph compiled with this process's checkpointer (the async one if asked)."""
    return _compiled(_spec_of(name).target, checkpoint.saver_key(), asynchronous)


def runs_async(name: str) -> bool:
    """Must this graph run through ``ainvoke``? (Some node or tool has no sync path.)"""
    target = _spec_of(name).target
    with _async_lock:
        if target in _async_learned:
            return True
    return _needs_async(_compiled(target, checkpoint.saver_key(), False))


@cache
def _needs_async_cached(graph: Pregel) -> bool:
    return _needs_async_walk(graph)


def learn_runs_async(name: str) -> bool:
    """Record that a sync run of this graph hit an async-only part; False if already known."""
    target = _spec_of(name).target
    with _async_lock:
        if target in _async_learned:
            return False
        _async_learned.add(target)
        return True


def state_keys(name: str) -> set[str]:
    """The keys of a graph's state (its channels, without LangGraph's own)."""
    graph = _compiled(_spec_of(name).target, checkpoint.saver_key(), False)
    return {
        key
        for key in graph.channels
        if not key.startswith(("__", "branch:", "start:")) and ":" not in key
    }


def tool_schemas(name: str) -> dict[str, dict[str, Any]]:
    """JSON Schemas of the arguments of the tools the graph's tool nodes run, by tool name.

    A ``create_agent`` graph runs its tools in a ``ToolNode``; each tool publishes the schema the
    model is given (``tool_call_schema``). A HITL edit is checked against it before the resume.
    """
    try:
        return _tool_schemas(_spec_of(name).target)
    except UnknownGraph:
        return {}


@cache
def _tool_schemas(target: str) -> dict[str, dict[str, Any]]:
    from langgraph.prebuilt import ToolNode
    from pydantic import BaseModel

    graph = _load(target)
    compiled = graph.compile() if isinstance(graph, StateGraph) else graph
    found: dict[str, dict[str, Any]] = {}
    stack: list[Any] = [node.bound for node in compiled.nodes.values()]
    while stack:
        runnable = stack.pop()
        if isinstance(runnable, Pregel):
            stack.extend(node.bound for node in runnable.nodes.values())
        elif isinstance(runnable, ToolNode):
            for tool_name, tool in runnable.tools_by_name.items():
                schema = getattr(tool, "tool_call_schema", None)
                try:
                    if isinstance(schema, type) and issubclass(schema, BaseModel):
                        found[tool_name] = schema.model_json_schema()
                    elif isinstance(schema, dict):
                        found[tool_name] = schema
                except Exception:  # a schema pydantic cannot express: infer from the values
                    continue
        else:
            bound = getattr(runnable, "bound", None)
            if isinstance(bound, Runnable):
                stack.append(bound)
    return found


def review_forms(name: str) -> dict[str, dict[str, Any]]:
    """How the graph's module says its nodes' interrupts are answered (``REVIEW_FORMS``).

    ``REVIEW_FORMS = {"node": {"schema": {...}, "form": "pkg.mod:Form", "template": "x.html"}}``,
    beside ``graph`` and without touching its ``interrupt()`` calls; the key ``"*"`` applies
    to every node. A ``schema`` is a JSON Schema the answer must match (drawn as a form, or as
    Approve / Reject when it has two outcomes); a ``form`` is a Django form taking
    ``(data, value=...)`` whose ``cleaned_data["value"]`` is the answer; a ``template`` renders
    the surfaced value (as ``value``, autoescaped like everything else).
    """
    try:
        target = _spec_of(name).target
    except UnknownGraph:
        return {}
    module = importlib.import_module(target.partition(":")[0])
    declared = getattr(module, "REVIEW_FORMS", None)
    return declared if isinstance(declared, dict) else {}


_async_learned: set[str] = set()
_async_lock = threading.Lock()


def _spec_of(name: str) -> GraphSpec:
    try:
        return graph_specs()[name]
    except KeyError:
        raise UnknownGraph(f"no graph named {name!r}") from None


@cache
def _compiled(target: str, saver_key: tuple[Any, ...], asynchronous: bool) -> Pregel:
    # saver_key changes after a fork or a database switch, so each process compiles its own.
    graph = _load(target)
    saver = checkpoint.async_saver() if asynchronous else checkpoint.saver()
    saver = saver.with_allowlist(_allowlist(graph))
    if isinstance(graph, StateGraph):
        return graph.compile(checkpointer=saver)
    return graph.copy(update={"checkpointer": saver})


def _load(target: str) -> StateGraph | Pregel:
    module_path, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_path), attribute)


def _allowlist(graph: StateGraph | Pregel) -> set[tuple[str, ...]]:
    """The types the graph's state, input, output, context and node schemas name.

    LangGraph computes the same list when ``LANGGRAPH_STRICT_MSGPACK`` is set; the desk always
    wants it, so a graph keeping Pydantic models or dataclasses in its state round-trips through
    the checkpointer without the "will be blocked in a future version" warning.
    """
    from langgraph._internal import _serde

    builder = graph if isinstance(graph, StateGraph) else getattr(graph, "builder", None)
    if not isinstance(builder, StateGraph):
        channels = graph.channels if isinstance(graph, Pregel) else {}
        return _serde.build_serde_allowlist(schemas=[], channels=channels)
    schemas: list[Any] = [builder.state_schema, builder.input_schema, builder.output_schema]
    if builder.context_schema is not None:
        schemas.append(builder.context_schema)
    schemas.extend(node.input_schema for node in builder.nodes.values())
    schemas.extend(
        branch.input_schema
        for branches in builder.branches.values()
        for branch in branches.values()
        if branch.input_schema is not None
    )
    return _serde.build_serde_allowlist(schemas=schemas, channels=builder.channels)


def _needs_async(graph: Pregel) -> bool:
    """Whether some node, subgraph or tool of the graph can only run asynchronously."""
    return _needs_async_cached(graph)


def _needs_async_walk(graph: Pregel) -> bool:
    from langgraph._internal._runnable import RunnableCallable, RunnableSeq
    from langgraph.prebuilt import ToolNode

    seen: set[int] = set()
    stack: list[Any] = [node.bound for node in graph.nodes.values()]
    while stack:
        runnable = stack.pop()
        if id(runnable) in seen:
            continue
        seen.add(id(runnable))
        if isinstance(runnable, Pregel):
            stack.extend(node.bound for node in runnable.nodes.values())
        elif isinstance(runnable, ToolNode):
            if any(
                getattr(tool, "func", True) is None and getattr(tool, "coroutine", None)
                for tool in runnable.tools_by_name.values()
            ):
                return True
        elif isinstance(runnable, RunnableCallable):
            if runnable.func is None and runnable.afunc is not None:
                return True
        elif isinstance(runnable, RunnableSeq | RunnableSequence):
            stack.extend(runnable.steps)
        elif isinstance(runnable, RunnableLambda):
            if not hasattr(runnable, "func") and hasattr(runnable, "afunc"):
                return True
        elif isinstance(runnable, Runnable):
            bound = getattr(runnable, "bound", None)  # RunnableBinding and friends
            if isinstance(bound, Runnable):
                stack.append(bound)
    return False


def _is_graph(obj: Any) -> bool:
    return isinstance(obj, StateGraph | Pregel)


def _spec(name: str, target: str, module: ModuleType) -> GraphSpec:
    doc = (module.__doc__ or "").strip().splitlines()
    return GraphSpec(
        name=name,
        target=target,
        description=doc[0] if doc else "",
        example_input=getattr(module, "EXAMPLE_INPUT", None),
    )
