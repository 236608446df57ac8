"""Worker memory: resident size after 100 cycles against after thousands (a leak check).

Cycles are driven without HTTP, as fast as the worker runs them: 16 bench threads, each
answered through the answer service as soon as its next question is pushed to the queue.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from reviewdesk import bench
from reviewdesk.bench import client
from reviewdesk.bench.desk import current, run, say, sync

ORDER = 70
BACKENDS = ("sqlite",)  # the leak is the worker's; one database keeps the run under 15 min
THREADS = 16
FIRST = 100


def _answer(item_id: int, username: str, text: str) -> None:
    from django.contrib.auth.models import User

    from reviewdesk.services import items

    items.review_item_answer(
        item_id=item_id, reviewer=User.objects.get(username=username), answer=text
    )


async def _drive(total: int, cap: float) -> dict[str, Any]:
    desk = current()
    username = await sync(desk.reviewer)(5)
    browser = await desk.browser(5)
    watcher = client.QueueWatcher(await browser.socket())
    tags = [desk.tag("m") for _ in range(THREADS)]
    for tag in tags:
        await sync(desk.thread_start)(tag)
    state = {"cycles": 0, "rss": {}}
    began = time.perf_counter()
    deadline = began + cap

    async def loop(tag: str) -> None:
        item, _ = await watcher.wait(tag, 1, timeout=90)
        n = 1
        while state["cycles"] < total and time.perf_counter() < deadline:
            await sync(_answer)(item, username, f"a{n}")
            item, _ = await watcher.wait(tag, n + 1, timeout=60)
            n += 1
            state["cycles"] += 1
            if state["cycles"] == FIRST:
                state["rss"][FIRST] = desk.worker_rss()
                state["first_at"] = time.perf_counter()

    try:
        await asyncio.gather(*(loop(tag) for tag in tags))
    finally:
        await watcher.close()
        await browser.close()
    state["rss"]["last"] = desk.worker_rss()
    state["rate"] = (state["cycles"] - FIRST) / (time.perf_counter() - state.get("first_at", began))
    return state


def measure(*, quick: bool) -> list[dict[str, Any]]:
    desk = current()
    total, cap = (FIRST + 20, 30.0) if bench.TINY else (600, 25.0) if quick else (5000, 240.0)
    say(f"{desk.backend}: worker memory over up to {total} cycles ({cap:g} s at most)")
    with desk.profiled("memory"):
        state = run(_drive(total, cap))
    desk.settle()
    first = state["rss"].get(FIRST)
    last = state["rss"]["last"]
    mb = 1024 * 1024
    if first is None:
        return [bench.missing("worker memory", "MB", f"fewer than {FIRST} cycles ran")]
    return [
        bench.row(
            f"worker RSS after {state['cycles']} cycles", last / mb, "MB",
            reference=first / mb, reference_name=f"after {FIRST} cycles",
            target="≤ 1.1× reference", passed=last <= 1.1 * first,
            note="" if state["cycles"] >= total else f"stopped at the {cap:g} s cap",
        ),
        bench.row(
            f"cycles/s through the answer service, {THREADS} threads (no HTTP)",
            state["rate"], "cycles/s",
            reference=desk.facts.get("bare_cps"), reference_name="bare LangGraph loop",
        ),
    ]  # fmt: skip
