"""Loaded into the chaos run's workers with `celery worker -I reviewdesk.chaos.probe`.

It changes nothing the engine does: Celery's task_prerun/task_postrun signals keep one marker
file per busy process (so the harness SIGKILLs a pool process while it runs a task, not an idle
one) and append one line per task start and end to a log (deliveries per thread, who ran what).
No Django imports; the directory comes from REVIEWDESK_CHAOS_PROBE_DIR.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from celery.signals import task_postrun, task_prerun

PROBE_ENV = "REVIEWDESK_CHAOS_PROBE_DIR"
ADVANCE = "reviewdesk.tasks.thread_advance"


def _dir() -> Path | None:
    path = os.environ.get(PROBE_ENV)
    return Path(path) if path else None


def _marker(base: Path) -> Path:
    # One per executing thread: a threads pool runs several tasks in one process.
    return base / "busy" / f"{os.getpid()}-{threading.get_ident()}"


def _log(base: Path, record: dict[str, Any]) -> None:
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(base / "tasks.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _thread_of(task: Any, args: Any, kwargs: Any) -> str:
    if args:
        return str(args[0])
    return str((kwargs or {}).get("thread_id", ""))


@task_prerun.connect
def _started(task_id: str = "", task: Any = None, args: Any = None, kwargs: Any = None, **_: Any):
    base = _dir()
    if base is None or getattr(task, "name", "") != ADVANCE:
        return
    thread = _thread_of(task, args, kwargs)
    marker = _marker(base)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"pid": os.getpid(), "thread": thread, "task": task_id}))
    _log(base, {"ev": "start", "pid": os.getpid(), "thread": thread, "task": task_id,
                "t": time.time()})  # fmt: skip


@task_postrun.connect
def _finished(
    task_id: str = "", task: Any = None, args: Any = None, kwargs: Any = None,
    retval: Any = None, state: str = "", **_: Any,
):  # fmt: skip
    base = _dir()
    if base is None or getattr(task, "name", "") != ADVANCE:
        return
    _marker(base).unlink(missing_ok=True)
    _log(base, {"ev": "end", "pid": os.getpid(), "thread": _thread_of(task, args, kwargs),
                "task": task_id, "state": state, "result": str(retval)[:200],
                "t": time.time()})  # fmt: skip
