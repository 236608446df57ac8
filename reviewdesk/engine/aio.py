"""One long-lived event loop per process, on a daemon thread, for async graphs and async savers.

LangGraph runs graphs with ``async def`` nodes only through ``ainvoke``, and the async savers
(``AsyncSqliteSaver``, ``AsyncPostgresSaver``) bind to the loop they were created on, so a fresh
``asyncio.run`` per task would strand them. Worker threads submit coroutines here and wait for the
result; many async runs share the loop, which is what an I/O-bound agent wants. A forked child
gets its own loop (threads do not survive a fork).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_pid: int | None = None


def loop() -> asyncio.AbstractEventLoop:
    """This process's engine loop, started on first use."""
    global _loop, _pid
    with _lock:
        if _loop is None or _pid != os.getpid() or not _loop.is_running():
            started = threading.Event()
            new_loop = asyncio.new_event_loop()

            def serve() -> None:
                asyncio.set_event_loop(new_loop)
                new_loop.call_soon(started.set)
                new_loop.run_forever()

            threading.Thread(target=serve, name="reviewdesk-engine-loop", daemon=True).start()
            started.wait()
            _loop, _pid = new_loop, os.getpid()
        return _loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the engine loop from any other thread and return its result."""
    return asyncio.run_coroutine_threadsafe(coro, loop()).result()
