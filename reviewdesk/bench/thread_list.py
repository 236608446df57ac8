"""How fast the staff thread list is at scale: ``python -m reviewdesk.bench.thread_list N``.

Fills a scratch database (DATABASE_URL must name one: it refuses a database that already holds
threads) with N threads over 5 graphs, 6 statuses, 20 starters and a year of dates, then times
the page (HTTP through Django's test client, as staff) and its queries (``--measure-only``
times a database it filled before): the first page, a page
deep into the keyset, filters, text search, and the counts per status.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewdesk.settings")
    import django

    django.setup()


def fill(n: int) -> None:
    from django.contrib.auth import get_user_model

    from reviewdesk.models import Queue, Thread

    if Thread.objects.exists():
        raise SystemExit(
            "This database already holds threads: point DATABASE_URL at a scratch one."
        )
    queue, _ = Queue.objects.get_or_create(slug="default", defaults={"name": "Default"})
    users = [get_user_model().objects.get_or_create(username=f"starter{i}")[0] for i in range(20)]
    rng = random.Random(8)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    batch: list[Any] = []
    for i in range(n):
        at = start + timedelta(seconds=rng.randrange(365 * 86400))
        batch.append(
            Thread(
                id=uuid.UUID(int=rng.getrandbits(128)),
                graph=f"graph{i % 5}",
                input={"request": f"order {i}", "note": "needle" if i % 1000 == 0 else "hay"},
                status=rng.choice(Thread.Status.values),
                queue=queue,
                started_by=users[i % 20],
            )
        )
        batch[-1]._at = at
        if len(batch) == 5000:
            _insert(batch)
            batch = []
    if batch:
        _insert(batch)


def _insert(batch: list[Any]) -> None:
    from reviewdesk.models import Thread

    Thread.objects.bulk_create(batch)
    # auto_now_add ignores given values: spread the dates over the year afterwards.
    for thread in batch:
        thread.created_at = thread.updated_at = thread._at
    Thread.objects.bulk_update(batch, ["created_at", "updated_at"])


def timed(label: str, call: Any, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    median = statistics.median(times)
    print(f"{label:<44} {median:8.1f} ms (median of {repeat})")
    return median


def main() -> None:
    _setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from reviewdesk.models import Thread
    from reviewdesk.queries import history

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 100_000
    began = time.perf_counter()
    if "--measure-only" not in sys.argv:  # re-measure a database this script filled before
        fill(n)
    took = time.perf_counter() - began
    print(f"{connection.vendor}: {Thread.objects.count()} threads, filled in {took:.0f} s")
    with connection.cursor() as cursor:  # fresh rows: statistics (and PostgreSQL's visibility map)
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    staff, _ = get_user_model().objects.get_or_create(username="bench-staff", is_staff=True)
    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(staff)
    filters = history.ThreadFilters()
    _, deep = history.thread_list(filters, size=50_000)

    def page(query: str) -> None:
        response = client.get(f"/threads/?{query}")
        assert response.status_code == 200, response.status_code

    timed("page 1 (HTTP, with counts)", lambda: page(""))
    timed("page deep in the keyset (HTTP)", lambda: page(filters.query(after=deep)))
    timed("graph + status filter (HTTP)", lambda: page("graph=graph2&status=failed"))
    timed(
        "started by + date range (HTTP)",
        lambda: page("started_by=starter7&since=2026-03-01&until=2026-03-31"),
    )
    timed("text search in input (HTTP)", lambda: page("text=needle"))
    timed("query: one keyset page", lambda: history.thread_list(filters))
    timed("query: counts per status", lambda: history.thread_counts(filters))


if __name__ == "__main__":
    main()
