"""HTTP capacity: the queue page under 10 concurrent connections, beside a static file.

Served as `make run` serves it (one Daphne process, static files through WhiteNoise). The
static file from the same server is the reference: what the server and this client cost per
request before the desk's view does anything.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from reviewdesk import bench
from reviewdesk.bench import client
from reviewdesk.bench.desk import current, run, say

ORDER = 50
CONNECTIONS = 10
ITEMS = 50  # pending items on the page
STATIC = "/static/reviewdesk/desk.css"


def _seed(count: int) -> None:
    """`count` pending questions in the default queue, written directly (no graph runs)."""
    from reviewdesk.models import Queue, ReviewItem, Thread

    queue = Queue.objects.get(slug="default")
    threads = Thread.objects.bulk_create(
        [
            Thread(graph="bench_loop", input={"tag": f"p{n}"}, status="interrupted", queue=queue)
            for n in range(count)
        ]
    )
    ReviewItem.objects.bulk_create(
        [
            ReviewItem(
                thread=t,
                interrupt_id=f"seed-{t.pk}",
                queue=queue,
                node="ask",
                value=f"bench:p{n}:1 — a question a reviewer reads before answering",
            )  # fmt: skip
            for n, t in enumerate(threads)
        ]
    )


async def _load(path: str, seconds: float, cookies: dict[str, str]) -> tuple[int, float, list]:
    desk = current()
    browsers = [client.Browser(desk.url, cookies=dict(cookies)) for _ in range(CONNECTIONS)]
    latencies: list[float] = []
    size = 0

    async def one(browser: client.Browser, until: float, record: bool) -> None:
        nonlocal size
        while time.perf_counter() < until:
            start = time.perf_counter()
            got = await browser.get(path)
            if got.status != 200:
                raise client.HttpError(f"GET {path}: HTTP {got.status}")
            if record:
                latencies.append(time.perf_counter() - start)
                size = len(got.body)

    warm = time.perf_counter() + min(1.0, seconds / 4)
    await asyncio.gather(*(one(b, warm, False) for b in browsers))
    start = time.perf_counter()
    await asyncio.gather(*(one(b, start + seconds, True) for b in browsers))
    elapsed = time.perf_counter() - start
    await asyncio.gather(*(b.close() for b in browsers))
    return size, len(latencies) / elapsed, latencies


async def _both(seconds: float) -> tuple[Any, Any]:
    browser = await current().browser(4)
    try:
        page = await _load("/", seconds, browser.cookies)
        static = await _load(STATIC, seconds, browser.cookies)
        return page, static
    finally:
        await browser.close()


def measure(*, quick: bool) -> list[dict[str, Any]]:
    desk = current()
    seconds = 1.0 if bench.TINY else 4.0 if quick else 10.0
    _seed(ITEMS)
    say(f"{desk.backend}: queue page and {STATIC}, {CONNECTIONS} connections × {seconds:g} s")
    with desk.profiled("capacity"):
        (size, rate, lat), (_, static_rate, static_lat) = run(_both(seconds))
    desk.settle()
    p = bench.percentile
    return [
        bench.row(
            f"queue page ({ITEMS} items, {size // 1024} KB), {CONNECTIONS} connections",
            rate, "req/s",
            reference=static_rate, reference_name="a static file, same server",
            target="≥ 300 req/s", passed=rate >= 300,
        ),
        bench.row(
            "queue page under that load, p99", bench.ms(p(lat, 99)), "ms",
            reference=bench.ms(p(static_lat, 99)), reference_name="the static file, p99",
            target="≤ 50 ms", passed=p(lat, 99) <= 0.050,
        ),
    ]  # fmt: skip
