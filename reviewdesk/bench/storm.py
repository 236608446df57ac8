"""Reconnect storm: the server restarts and 300 open queue pages come back within 6 s.

Each page does what desk.js does: open the queue socket (a refused or dropped handshake is
retried after the page's back-off: 0.5 s doubling to 10 s, with jitter), then fetch the queue's
list, the authoritative fragment. A page is done when that list is the database's.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from reviewdesk import bench
from reviewdesk.bench import client
from reviewdesk.bench.desk import current, run, say, sync

ORDER = 40
PAGES = 300
SPREAD = 6.0  # seconds over which the pages reconnect (50 connects/s)
GIVE_UP = 90.0


def _pending_ids() -> set[int]:
    from reviewdesk.models import ReviewItem

    return set(
        ReviewItem.objects.filter(status=ReviewItem.Status.PENDING).values_list("pk", flat=True)
    )


def _seed(count: int) -> None:
    """A few real questions waiting, so the correct queue is not simply empty."""
    desk = current()
    ids = [desk.thread_start(desk.tag("q")) for _ in range(count)]
    for thread_id in ids:
        desk.pending_item(thread_id)


async def _page(base: str, cookies: dict[str, str], delay: float, want: set[int], out: dict) -> Any:
    await asyncio.sleep(delay)
    browser = client.Browser(base, cookies=dict(cookies))
    retries = 0
    while time.perf_counter() < out["deadline"]:
        try:
            ws = await browser.socket(timeout=30)
        except Exception as error:  # refused, dropped, timed out: the page backs off
            out["refused"] += 1
            out["why"][type(error).__name__] = out["why"].get(type(error).__name__, 0) + 1
            wait = min(0.5 * 2**retries, 10.0)
            retries += 1
            await asyncio.sleep(wait / 2 + random.random() * wait / 2)
            continue
        try:
            shown = await browser.queue_fragment()
        except Exception:
            out["fetch_failed"] += 1
            await ws.close()
            continue
        out["done"].append(time.perf_counter())
        out["correct"] += shown == want
        await browser.close()
        return ws
    return None


async def _storm(pages: int, spread: float) -> dict[str, Any]:
    desk = current()
    browser = await desk.browser(3)
    want = await sync(_pending_ids)()
    say(f"{desk.backend}: restarting Daphne, then {pages} pages reconnect over {spread:g} s")
    await sync(desk.stop_web)()
    await sync(desk.start_web)()
    out: dict[str, Any] = {
        "refused": 0, "fetch_failed": 0, "correct": 0, "done": [], "why": {},
        "deadline": time.perf_counter() + GIVE_UP,
    }  # fmt: skip
    began = time.perf_counter()
    sockets = await asyncio.gather(
        *(_page(desk.url, browser.cookies, n * spread / pages, want, out) for n in range(pages))
    )
    out["all_correct_after"] = max(out["done"]) - began if out["correct"] == pages else float("nan")
    await asyncio.gather(*(ws.close() for ws in sockets if ws is not None), return_exceptions=True)
    await browser.close()
    return out


def measure(*, quick: bool) -> list[dict[str, Any]]:
    desk = current()
    pages = 20 if bench.TINY else PAGES
    _seed(2 if bench.TINY else 5)
    with desk.profiled("storm"):
        out = run(_storm(pages, SPREAD))
    desk.settle()
    why = ", ".join(f"{k} × {v}" for k, v in out["why"].items())
    return [
        bench.row(
            f"reconnect storm: {pages} pages within {SPREAD:g} s after a restart, "
            "handshakes refused", out["refused"], "",
            target="0", passed=out["refused"] == 0, note=why,
        ),
        bench.row(
            f"reconnect storm: all {pages} show the database-correct queue after",
            out["all_correct_after"], "s",
            reference=SPREAD, reference_name="the last page's first try",
            note="" if out["correct"] == pages else
            f"only {out['correct']} of {pages} did within {GIVE_UP:g} s",
        ),
    ]  # fmt: skip
