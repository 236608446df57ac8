"""Registry of the graphs the desk can run, discovered from graphs/ and settings.

A module of the graphs package that defines a module-level ``graph`` (a ``StateGraph`` builder or a
graph compiled without a checkpointer) is registered under the module's name;
``settings.REVIEWDESK_GRAPHS`` maps extra names to ``"module.path:attribute"`` as ``langgraph.json``
does. Graphs are used unchanged: the desk attaches its own checkpointer.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from django.conf import settings
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from reviewdesk import checkpoint


class UnknownGraph(LookupError):
    """No graph is registered under that name."""


@dataclass(frozen=True)
class GraphSpec:
    name: str
    target: str  # "module:attribute"
    description: str
    example_input: Any


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


def graph_get(name: str) -> Pregel:
    """The named graph compiled with this process's checkpointer."""
    try:
        spec = graph_specs()[name]
    except KeyError:
        raise UnknownGraph(f"no graph named {name!r}") from None
    return _compiled(spec.target, checkpoint.saver_key())


@cache
def _compiled(target: str, saver_key: tuple[Any, ...]) -> Pregel:
    # saver_key changes after a fork or a database switch, so each process compiles its own.
    module_path, _, attribute = target.partition(":")
    graph = getattr(importlib.import_module(module_path), attribute)
    saver = checkpoint.saver()
    if isinstance(graph, StateGraph):
        return graph.compile(checkpointer=saver)
    return graph.copy(update={"checkpointer": saver})


def _is_graph(obj: Any) -> bool:
    return isinstance(obj, StateGraph | Pregel)


def _spec(name: str, target: str, module: ModuleType) -> GraphSpec:
    doc = (module.__doc__ or "").strip().splitlines()
    return GraphSpec(
        name=name,
        target=target,
        description=doc[0] if doc else "",
        example_input=getattr(module, "EXAMPLE_INPUT", {}),
    )
