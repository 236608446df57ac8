"""Scripted reviewers: each watches the queue over its socket and answers its own bench thread.

A reviewer opens the queue page's socket first (so no push is missed), then starts a thread of
the bench graph, which asks ``bench:<tag>:1``, ``bench:<tag>:2``, ... one question per answer.
One cycle: open the item page, POST the answer form, wait until the next question's row is
pushed to the queue socket.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from reviewdesk.bench import client
from reviewdesk.bench.desk import Desk, sync


@dataclass
class Reviewer:
    browser: client.Browser
    watcher: client.QueueWatcher
    tag: str
    asked: int  # the number of the question pending now
    item: int  # its item id

    @classmethod
    async def open(cls, desk: Desk, n: int = 1, **graph_input: Any) -> Reviewer:
        browser = await desk.browser(n)
        watcher = client.QueueWatcher(await browser.socket())
        tag = desk.tag(f"r{n}x")
        await sync(desk.thread_start)(tag, **graph_input)
        item, _ = await watcher.wait(tag, 1, timeout=90)
        return cls(browser, watcher, tag, 1, item)

    async def cycle(self, timeout: float = 30.0) -> tuple[float, float]:
        """Answer the pending question; (POST → next question on the socket, POST) seconds."""
        start, post = await self.browser.answer(self.item, f"answer {self.asked}")
        self.item, arrived = await self.watcher.wait(self.tag, self.asked + 1, timeout)
        self.asked += 1
        return arrived - start, post

    async def close(self) -> None:
        await self.watcher.close()
        await self.browser.close()


async def open_many(desk: Desk, count: int, **graph_input: Any) -> list[Reviewer]:
    return list(
        await asyncio.gather(*(Reviewer.open(desk, n + 1, **graph_input) for n in range(count)))
    )


async def close_all(reviewers: list[Reviewer]) -> None:
    await asyncio.gather(*(r.close() for r in reviewers), return_exceptions=True)


async def loop_for(reviewers: list[Reviewer], seconds: float) -> tuple[int, float, list[float]]:
    """Every reviewer cycles as fast as the desk lets it for `seconds`.

    Returns (cycles, elapsed seconds, latency of each cycle).
    """
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def one(reviewer: Reviewer) -> None:
        while time.perf_counter() < deadline:
            latency, _ = await reviewer.cycle()
            latencies.append(latency)

    start = time.perf_counter()
    await asyncio.gather(*(one(r) for r in reviewers))
    return len(latencies), time.perf_counter() - start, latencies
