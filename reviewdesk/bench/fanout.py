"""Fan-out: 100 and 500 queue pages open on one queue; how soon each shows a new item.

A reviewer answers; the time runs from its POST until each socket has the next question's row.
Its reference is the first socket to get it in the same round (the pipeline alone): what comes
on top is the cost of reaching every page.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from websockets.asyncio.client import ClientConnection

from reviewdesk import bench
from reviewdesk.bench import reviewers
from reviewdesk.bench.desk import current, run, say

ORDER = 30


class Pages:
    """N open queue sockets, each noting when the expected row reaches it."""

    def __init__(self, sockets: list[ClientConnection]) -> None:
        self.sockets = sockets
        self.marker = ""
        self.arrived: list[float] = []
        self.all_in = asyncio.Event()
        self.tasks = [asyncio.create_task(self._read(ws)) for ws in sockets]

    async def _read(self, ws: ClientConnection) -> None:
        async for message in ws:
            if self.marker and self.marker in message:
                self.arrived.append(time.perf_counter())
                if len(self.arrived) == len(self.sockets):
                    self.all_in.set()

    def expect(self, marker: str) -> None:
        self.marker, self.arrived = marker, []
        self.all_in.clear()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


async def open_sockets(browser: Any, count: int, batch: int = 20) -> list[ClientConnection]:
    """`count` queue sockets, opened `batch` at a time (opening is not what is measured)."""
    sockets: list[ClientConnection] = []
    while len(sockets) < count:
        want = min(batch, count - len(sockets))
        got = await asyncio.gather(*(browser.socket() for _ in range(want)), return_exceptions=True)
        sockets += [ws for ws in got if not isinstance(ws, BaseException)]
    return sockets


async def _fan_out(count: int, rounds: int) -> tuple[list[float], list[float]]:
    """(latency of every socket in every round, latency of each round's first socket)."""
    desk = current()
    reviewer = await reviewers.Reviewer.open(desk)
    audience = await desk.browser(2)
    pages = Pages(await open_sockets(audience, count))
    latencies: list[float] = []
    firsts: list[float] = []
    try:
        await reviewer.cycle()  # warm-up
        # Profiled from here: the deliveries, not the handshakes of opening the sockets.
        with desk.profiled(f"fanout{count}"):
            await _rounds(reviewer, pages, count, rounds, latencies, firsts)
    finally:
        await pages.close()
        await audience.close()
        await reviewer.close()
    return latencies, firsts


async def _rounds(
    reviewer: reviewers.Reviewer,
    pages: Pages,
    count: int,
    rounds: int,
    latencies: list[float],
    firsts: list[float],
) -> None:
    for _ in range(rounds):
        pages.expect(f"bench:{reviewer.tag}:{reviewer.asked + 1}<")
        start, _post = await reviewer.browser.answer(reviewer.item, "fan-out")
        try:
            await asyncio.wait_for(pages.all_in.wait(), 30)
        except TimeoutError:
            say(f"only {len(pages.arrived)} of {count} sockets got the new item in 30 s")
            if not pages.arrived:
                raise
        reviewer.item, _ = await reviewer.watcher.wait(reviewer.tag, reviewer.asked + 1)
        reviewer.asked += 1
        latencies += [t - start for t in pages.arrived]
        firsts.append(min(pages.arrived) - start)
        await asyncio.sleep(0.2)


def measure(*, quick: bool) -> list[dict[str, Any]]:
    desk = current()
    sizes = (
        ((10, 2), (20, 2))
        if bench.TINY
        else ((100, 4), (500, 2))
        if quick
        else ((100, 10), (500, 6))
    )
    rows = []
    p = bench.percentile
    ms = bench.ms
    for count, rounds in sizes:
        say(f"{desk.backend}: fan-out to {count} sockets × {rounds} rounds")
        latencies, firsts = run(_fan_out(count, rounds))
        desk.settle()
        target = {"target": "≤ 250 ms", "passed": p(latencies, 95) * 1000 <= 250}
        alone = desk.facts.get("submit_p95")
        rows += [
            bench.row(
                f"fan-out: new item on {count} sockets, p95 (from the POST)",
                ms(p(latencies, 95)), "ms",
                reference=None if alone is None else ms(alone),
                reference_name=None if alone is None else "one page open (submit → visible p95)",
                **(target if count >= 500 else {}),
            ),
            bench.row(
                f"fan-out: new item on {count} sockets, max", ms(max(latencies)), "ms",
                reference=ms(max(firsts)), reference_name="the first of them to get it, max",
            ),
        ]  # fmt: skip
    return rows
