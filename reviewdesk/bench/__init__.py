"""`python manage.py bench`: the desk's figures, each beside a reference measured in the same run.

A **measurement** is any module of this package that defines ``measure(*, quick: bool) ->
list[dict]``. The command runs each one once per database (SQLite, then PostgreSQL when it is
reachable), in a process whose Django database, checkpointer and Redis are scratch ones made for
the bench, and prints every row it returns in one table. A row:

    {"figure": "submit → next item visible, p95", "value": 41.0, "unit": "ms",
     "reference": 9.0, "reference_name": "bare LangGraph resume → interrupt, p95",
     "target": "≤ 3× reference and ≤ 40 ms", "pass": False}

``reference`` is measured in the same run, so the ratio holds on a noisy machine; ``target`` is
text for people, ``pass`` the verdict (None: nothing to judge). Build rows with `row()`. A
module may also set ``ORDER`` (int, lower runs first; default 100) and ``BACKENDS`` (the
databases it runs on, a subset of ``("sqlite", "postgresql")``; default both). It reaches the
running desk (its Daphne URL, the worker's pid, reviewers' logins) through
``reviewdesk.bench.desk.current()``.

Nothing here imports Django at import time: the bench graph lives in this package and is
loaded by Celery workers and by LangGraph's own server alike.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Sequence
from types import ModuleType
from typing import Any

BACKENDS = ("sqlite", "postgresql")
# Set by `bench --tiny` (the test suite): measurements of this package shrink to a few samples.
TINY = False


def row(
    figure: str,
    value: float | None,
    unit: str,
    *,
    reference: float | None = None,
    reference_name: str | None = None,
    target: str | None = None,
    passed: bool | None = None,
    note: str = "",
) -> dict[str, Any]:
    """One row of the table (``value`` None: the figure could not be measured; say why in note)."""
    out: dict[str, Any] = {
        "figure": figure,
        "value": None if value is None else float(value),
        "unit": unit,
        "reference": None if reference is None else float(reference),
        "reference_name": reference_name,
        "target": target,
        "pass": passed,
    }
    if note:
        out["note"] = note
    return out


def missing(figure: str, unit: str, why: str, *, target: str | None = None) -> dict[str, Any]:
    """A row for a figure that could not be measured: it says why instead of failing the run."""
    return row(figure, None, unit, target=target, note=why)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), linear between closest ranks; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def measurements(backend: str, only: Sequence[str] = ()) -> list[ModuleType]:
    """The measurement modules to run on `backend`, in ORDER then name order."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or (only and info.name not in only):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if callable(getattr(module, "measure", None)) and backend in getattr(
            module, "BACKENDS", BACKENDS
        ):
            found.append(module)
    return sorted(found, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


def well_formed(r: Any) -> bool:
    """Whether a measurement returned a row the table and the JSON can carry."""
    keys = {"figure", "value", "unit", "reference", "reference_name", "target", "pass"}
    return isinstance(r, dict) and keys <= r.keys() and isinstance(r["figure"], str)
