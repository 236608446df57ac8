"""Graphs with model latency: 50 threads whose steps wait 2 s, and answers while they run.

The engine holds no transaction while a graph runs, so answering an item should take as long
while 50 graphs are inside slow steps as on an idle desk, and 50 threads should all have asked
after little more than the steps themselves take (the pool must not queue them).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from reviewdesk import bench
from reviewdesk.bench import client, reviewers
from reviewdesk.bench.desk import current, run, say, sync

ORDER = 20
THREADS = 50
THINK = 2.0  # seconds each "model call" waits


def measure(*, quick: bool) -> list[dict[str, Any]]:
    desk = current()
    threads = 5 if bench.TINY else THREADS
    steps = 1 if quick else 2
    idle_answers = 3 if bench.TINY else 15 if quick else 30
    say(f"{desk.backend}: {idle_answers} answers idle, then during {threads} slow threads")
    with desk.profiled("slow"):
        idle, busy, all_asked = run(_measure(threads, steps, idle_answers))
    desk.settle()
    ideal = THINK * steps
    p = bench.percentile
    ms = bench.ms
    return [
        bench.row(
            f"{threads} threads whose {steps} step{'s' * (steps > 1)} wait {THINK:g} s: "
            "all asked after", all_asked, "s",
            reference=ideal, reference_name=f"ideal ({THINK:g} s × {steps})",
            target="≤ 2× reference", passed=all_asked <= 2 * ideal,
        ),
        bench.row(
            f"answer POST while they run, p95 ({len(busy)} answers)", ms(p(busy, 95)), "ms",
            reference=ms(p(idle, 95)), reference_name=f"idle desk, p95 ({len(idle)} answers)",
            target="≤ 1.5× reference", passed=p(busy, 95) <= 1.5 * p(idle, 95),
        ),
        bench.row(
            "answer POST while they run, p50", ms(p(busy, 50)), "ms",
            reference=ms(p(idle, 50)), reference_name="idle desk, p50",
        ),
    ]  # fmt: skip


async def _measure(threads: int, steps: int, idle_answers: int) -> tuple[list, list, float]:
    desk = current()
    reviewer = await reviewers.Reviewer.open(desk)
    watcher = client.QueueWatcher(await reviewer.browser.socket())
    try:
        for _ in range(3):
            await reviewer.cycle()
        idle = [(await reviewer.cycle())[1] for _ in range(idle_answers)]
        tags = [desk.tag("s") for _ in range(threads)]

        def start_all() -> None:
            for tag in tags:
                desk.thread_start(tag, think=THINK, steps=steps)

        began = time.perf_counter()
        starting = asyncio.ensure_future(sync(start_all)())
        asked = asyncio.ensure_future(
            asyncio.gather(*(watcher.wait(tag, 1, timeout=180) for tag in tags))
        )
        busy = []
        while not asked.done():
            busy.append((await reviewer.cycle())[1])
        await starting
        arrivals = await asked
        return idle, busy, max(t for _, t in arrivals) - began
    finally:
        await watcher.close()
        await reviewer.close()
