"""The references: bare LangGraph in one process, and a bare Celery round trip.

The bare loop runs the very graph the desk runs, compiled by the desk's registry with the
desk's checkpointer (SqliteSaver on the scratch file, or PostgresSaver on the scratch
database), `durability="sync"` as the engine runs it, on a thread id of its own: no Django
rows, no Redis, no Celery, no sockets. What the desk adds on top of it is the desk's cost.
"""

from __future__ import annotations

import time
import uuid

from reviewdesk.bench import desk as bench_desk


def resume_cycles(count: int, *, warmup: int = 5) -> list[float]:
    """Seconds of each bare resume → next interrupt, after `warmup` uncounted ones."""
    from langgraph.types import Command

    from reviewdesk.engine import registry

    graph = registry.graph_get(bench_desk.GRAPH)
    config = {"configurable": {"thread_id": f"bare-{uuid.uuid4()}"}}
    out = graph.invoke({"tag": "bare"}, config, durability="sync")
    times = []
    for n in range(warmup + count):
        [pending] = out["__interrupt__"]
        start = time.perf_counter()
        out = graph.invoke(Command(resume={pending.id: f"answer {n}"}), config, durability="sync")
        if n >= warmup:
            times.append(time.perf_counter() - start)
    return times


def celery_round_trips(count: int, *, warmup: int = 5) -> list[float]:
    """Seconds of enqueue → the desk's worker runs a no-op task → the bench hears back."""
    import redis
    from django.conf import settings

    from reviewdesk.celery import app

    r = redis.Redis.from_url(settings.REDIS_URL)
    key = f"bench:echo:{uuid.uuid4()}"
    times = []
    for n in range(warmup + count):
        start = time.perf_counter()
        app.send_task("reviewdesk.bench.echo", args=[key])
        if r.blpop([key], timeout=30) is None:
            raise TimeoutError("the worker did not run the echo task within 30 s")
        if n >= warmup:
            times.append(time.perf_counter() - start)
    return times
