"""Submit → next item visible, and throughput, each beside bare LangGraph measured just before.

One scripted reviewer answers through the real form while its socket watches the queue: the
time from the POST to the next question's row arriving, over ≥ 200 cycles. Then 8 reviewers,
each on a thread of its own, answer as fast as the desk lets them: cycles per second against
the bare loop's.
"""

from __future__ import annotations

import statistics
from typing import Any

from reviewdesk import bench
from reviewdesk.bench import bare, reviewers
from reviewdesk.bench.desk import current, run, say

ORDER = 10
ABSOLUTE_P95 = {"sqlite": 40.0, "postgresql": 50.0}  # ms, on an idle machine
REVIEWERS = 8


def _counts(quick: bool) -> tuple[int, int, float]:
    """(sequential cycles, bare cycles, seconds of the 8-reviewer loop)."""
    if bench.TINY:
        return 5, 10, 2.0
    return (50, 100, 6.0) if quick else (200, 300, 20.0)


def measure(*, quick: bool) -> list[dict[str, Any]]:
    desk = current()
    cycles, bare_count, seconds = _counts(quick)
    say(f"{desk.backend}: bare LangGraph, {bare_count} resume → interrupt cycles")
    bare_times = bare.resume_cycles(bare_count)
    say(f"{desk.backend}: Celery round trip × {cycles}")
    celery_times = bare.celery_round_trips(cycles)
    say(f"{desk.backend}: submit → next item visible × {cycles}")
    with desk.profiled("submit"):
        seen, posts = run(_sequential(cycles))
    desk.settle()
    say(f"{desk.backend}: {REVIEWERS} reviewers for {seconds:g} s")
    with desk.profiled("throughput"):
        done, elapsed, loaded = run(_loaded(seconds))
    desk.settle()

    p = bench.percentile
    bare_cps = len(bare_times) / sum(bare_times)
    desk_cps = done / elapsed
    desk.facts.update(
        submit_p50=p(seen, 50), submit_p95=p(seen, 95), desk_cps=desk_cps,
        loaded_p50=p(loaded, 50), loaded_p95=p(loaded, 95), bare_cps=bare_cps,
    )  # fmt: skip
    limit = ABSOLUTE_P95[desk.backend]
    floor = p(bare_times, 50) + p(celery_times, 50)
    ms = bench.ms
    n = f"{len(seen)} cycles"
    return [
        bench.row(
            f"submit → next item visible, p50 ({n})", ms(p(seen, 50)), "ms",
            reference=ms(floor),
            reference_name="floor: bare resume p50 + Celery round trip p50",
        ),
        bench.row(
            "submit → next item visible, p95", ms(p(seen, 95)), "ms",
            reference=ms(p(bare_times, 95)),
            reference_name="bare LangGraph resume → interrupt p95 (same graph, checkpointer)",
            target="≤ 3× reference", passed=p(seen, 95) <= 3 * p(bare_times, 95),
        ),
        bench.row(
            "submit → next item visible, p95 (absolute)", ms(p(seen, 95)), "ms",
            target=f"≤ {limit:g} ms (idle machine)", passed=p(seen, 95) * 1000 <= limit,
        ),
        bench.row(
            "submit → next item visible, p99", ms(p(seen, 99)), "ms",
            reference=ms(p(bare_times, 99)), reference_name="bare resume → interrupt p99",
        ),
        bench.row(
            "answer POST alone (server time + client), p50", ms(p(posts, 50)), "ms",
            reference=ms(statistics.median(seen)), reference_name="whole cycle p50",
        ),
        bench.row(
            "Celery round trip (enqueue → worker → back), p50", ms(p(celery_times, 50)), "ms",
            reference=ms(p(celery_times, 95)), reference_name="its p95",
        ),
        bench.row(
            f"throughput, {REVIEWERS} reviewers through the form", desk_cps, "cycles/s",
            reference=bare_cps, reference_name="bare LangGraph loop, one process",
            target="≥ 0.5× reference", passed=desk_cps >= 0.5 * bare_cps,
        ),
        bench.row(
            f"cycle latency with {REVIEWERS} reviewers, p95", ms(p(loaded, 95)), "ms",
            reference=ms(p(seen, 95)), reference_name="one reviewer alone, p95",
        ),
    ]  # fmt: skip


async def _sequential(cycles: int) -> tuple[list[float], list[float]]:
    reviewer = await reviewers.Reviewer.open(current())
    try:
        for _ in range(5):  # warm-up: first requests compile templates, open connections
            await reviewer.cycle()
        seen, posts = [], []
        for _ in range(cycles):
            latency, post = await reviewer.cycle()
            seen.append(latency)
            posts.append(post)
        return seen, posts
    finally:
        await reviewer.close()


async def _loaded(seconds: float) -> tuple[int, float, list[float]]:
    team = await reviewers.open_many(current(), REVIEWERS)
    try:
        await reviewers.loop_for(team, min(2.0, seconds / 4))  # warm-up
        return await reviewers.loop_for(team, seconds)
    finally:
        await reviewers.close_all(team)
