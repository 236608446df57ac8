"""Drive LangGraph's own server (``langgraph dev``) through ``langgraph-sdk``; print JSON.

Runs with the peer's virtualenv (``var/bench/peer-venv``), never the desk's: it imports only
the SDK. The cycle is the desk's: resume the waiting interrupt, wait until the graph asks again.
``python peer_driver.py URL --cycles N --clients 8 --seconds S``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from langgraph_sdk import get_client

ASSISTANT = "bench"


def _asked(values: Any) -> int:
    return int(values.get("asked", 0)) if isinstance(values, dict) else -1


async def _thread(client: Any, tag: str) -> str:
    thread = await client.threads.create()
    values = await client.runs.wait(thread["thread_id"], ASSISTANT, input={"tag": tag})
    if "__interrupt__" not in values:
        raise RuntimeError(f"the first run did not interrupt: {values!r}")
    return thread["thread_id"]


async def _cycle(client: Any, thread_id: str, expect: int) -> float:
    """One resume → next interrupt; its wall time in seconds."""
    start = time.perf_counter()
    values = await client.runs.wait(thread_id, ASSISTANT, command={"resume": "ok"})
    elapsed = time.perf_counter() - start
    if _asked(values) != expect or "__interrupt__" not in values:
        raise RuntimeError(f"expected question {expect + 1} pending, got {values!r}")
    return elapsed


async def main(url: str, cycles: int, clients: int, seconds: float) -> dict[str, Any]:
    client = get_client(url=url)
    # Sequential: one client, one thread.
    thread_id = await _thread(client, "seq")
    latencies = [await _cycle(client, thread_id, n) for n in range(1, cycles + 1)]
    # Concurrent: `clients` clients, each on its own thread, for `seconds`.
    threads = [await _thread(client, f"c{n}") for n in range(clients)]
    done = [0] * clients
    loop_latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def reviewer(n: int) -> None:
        while time.perf_counter() < deadline:
            loop_latencies.append(await _cycle(client, threads[n], done[n] + 1))
            done[n] += 1

    start = time.perf_counter()
    await asyncio.gather(*(reviewer(n) for n in range(clients)))
    elapsed = time.perf_counter() - start
    return {
        "latencies": latencies,
        "concurrent_cycles": sum(done),
        "concurrent_seconds": elapsed,
        "concurrent_latencies": loop_latencies,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.url, args.cycles, args.clients, args.seconds))))
