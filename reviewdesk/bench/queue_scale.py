"""Queue scale: server time of the queue's pages with 10,000 and with 1,000,000 pending items.

A measurement for ``manage.py bench`` (``measure(*, quick)`` → rows). It bulk-seeds pending
items with one SQL statement (``generate_series`` on PostgreSQL, a recursive CTE on SQLite)
into a queue of its own on whatever database Django is configured with, then times the real
views through Django's test client (middleware, permissions, queries, templates: everything
but the network) as a reviewer of that queue, and removes what it seeded. Figures:

- the queue page (My queues, first page), a later keyset page, the pending count, an item;
- the same first page read the way the desk did before the workbench (items filtered by a
  subquery of the user's queues), for reference: the cost the per-queue index walk removed.

Targets (issue 7): the first page and any later page ≤ 50 ms at 1M pending, and within 1.5×
of the same page at 10k.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

SIZES = (10_000, 1_000_000)
QUICK_SIZES = (1_000, 10_000)
TINY_SIZES = (100, 500)  # `bench --tiny`: the test suite checks the machinery, not the figures
REPEATS = 15
SLUG = "bench-queue-scale"
USERNAME = "bench-queue-scale"
TARGET_MS = 50.0
TARGET_RATIO = 1.5
GRAPH = "bench-queue-scale"


def measure(*, quick: bool) -> list[dict[str, Any]]:
    """Seed, time and clean up at each size; one row per figure."""
    from reviewdesk import bench

    small, large = TINY_SIZES if bench.TINY else QUICK_SIZES if quick else SIZES
    setup = _setup()
    try:
        at: dict[int, dict[str, float]] = {}
        seeded = 0
        for size in (small, large):
            _seed(setup, start=seeded, count=size - seeded)
            seeded = size
            at[size] = _time_pages(setup, size)
    finally:
        _teardown(setup)
    return _rows(at, small, large)


def _rows(at: dict[int, dict[str, float]], small: int, large: int) -> list[dict[str, Any]]:
    from django.db import connection

    vendor = connection.vendor
    rows = []
    names = {
        "first": "queue page (first page)",
        "later": "queue page (a later keyset page)",
        "count": "pending count",
        "item": "item page",
    }
    for key, name in names.items():
        value, reference = at[large][key], at[small][key]
        judged = key in ("first", "later")
        rows.append(
            {
                "figure": f"{name}, {large:,} pending, {vendor}",
                "value": round(value, 2),
                "unit": "ms",
                "reference": round(reference, 2),
                "reference_name": f"same at {small:,} pending",
                "target": f"≤ {TARGET_MS:g} ms and ≤ {TARGET_RATIO:g}× the {small:,} figure"
                if judged
                else None,
                "pass": (value <= TARGET_MS and value <= TARGET_RATIO * max(reference, 1.0))
                if judged
                else None,
                "note": f"median wall time; CPU of the web process "
                f"{CPU.get(key + str(large), 0):.1f} ms ({CPU.get(key + str(small), 0):.1f} ms "
                f"at {small:,})",
            }
        )
    rows.append(
        {
            "figure": f"first page's query, before the workbench, {large:,} pending, {vendor}",
            "value": round(at[large]["old"], 2),
            "unit": "ms",
            "reference": round(at[large]["query"], 2),
            "reference_name": "the workbench's first page's queries, same data",
            "target": None,
            "pass": None,
        }
    )
    return rows


# --- data -----------------------------------------------------------------------------------------


def _setup() -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from reviewdesk.models import Queue

    _teardown({})  # what an interrupted earlier run left
    group, _ = Group.objects.get_or_create(name=SLUG)
    queue = Queue.objects.create(slug=SLUG, name="Bench: queue scale")
    queue.groups.add(group)
    other = Queue.objects.create(slug=f"{SLUG}-2", name="Bench: a second queue")
    other.groups.add(group)
    user = get_user_model().objects.create_user(USERNAME, password=None)
    user.groups.add(group)
    return {"queue": queue, "other": other, "user": user}


def _seed(setup: dict[str, Any], *, start: int, count: int) -> None:
    """`count` pending items, each in a thread of its own (as real ones are), one second apart
    going back in time: two statements, whatever the count."""
    from django.db import connection, transaction

    thread_columns = (
        "id, graph, input, status, error, traceback, attempts, retry_requested, queue_id, "
        "worker, created_at, updated_at"
    )
    item_columns = (
        "thread_id, interrupt_id, kind, queue_id, value, node, namespace, status, "
        "created_at, updated_at, priority"
    )
    queue, first, last = setup["queue"].pk, start + 1, start + count
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            uuid = "('b0000000' || lpad(to_hex(g), 24, '0'))::uuid"
            cursor.execute(
                f"INSERT INTO reviewdesk_thread ({thread_columns}) "
                f"SELECT {uuid}, %s, '{{}}'::jsonb, 'interrupted', '', '', 0, false, %s, '', "
                "now(), now() FROM generate_series(%s, %s) AS g",
                [GRAPH, queue, first, last],
            )
            cursor.execute(
                f"INSERT INTO reviewdesk_reviewitem ({item_columns}) "
                f"SELECT {uuid}, 'bench-' || g, 'interrupt', %s, to_jsonb('Question ' || g), "
                "'ask', '', 'pending', now() - make_interval(secs => g), now(), g %% 3 "
                "FROM generate_series(%s, %s) AS g",
                [queue, first, last],
            )
        else:
            series = (
                "WITH RECURSIVE g(n) AS (SELECT %s UNION ALL SELECT n + 1 FROM g WHERE n < %s) "
            )
            uuid = "'b0000000' || printf('%%024x', n)"
            now = "strftime('%%Y-%%m-%%d %%H:%%M:%%S', 'now') || '.000000'"
            ago = "strftime('%%Y-%%m-%%d %%H:%%M:%%S', 'now', '-' || n || ' seconds') || '.000000'"
            cursor.execute(
                f"{series}INSERT INTO reviewdesk_thread ({thread_columns}) "
                f"SELECT {uuid}, %s, '{{}}', 'interrupted', '', '', 0, 0, %s, '', "
                f"{now}, {now} FROM g",
                [first, last, GRAPH, queue],
            )
            cursor.execute(
                f"{series}INSERT INTO reviewdesk_reviewitem ({item_columns}) "
                f"SELECT {uuid}, 'bench-' || n, 'interrupt', %s, json_quote('Question ' || n), "
                f"'ask', '', 'pending', {ago}, {now}, n %% 3 FROM g",
                [first, last, queue],
            )
        if start == 0:
            # A few in a second queue, so pages merge two queues as a reviewer's would.
            from reviewdesk.models import ReviewItem, Thread

            threads = Thread.objects.bulk_create(
                Thread(graph=GRAPH, input={}, queue=setup["other"], status="interrupted")
                for _ in range(100)
            )
            ReviewItem.objects.bulk_create(
                ReviewItem(
                    thread=thread,
                    interrupt_id=f"bench-other-{n}",
                    queue=setup["other"],
                    value=f"Other question {n}",
                    node="ask",
                )
                for n, thread in enumerate(threads)
            )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reviewdesk_reviewitem")
        cursor.execute("ANALYZE reviewdesk_thread")


def _teardown(setup: dict[str, Any]) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection

    from reviewdesk.models import AuditEvent, Queue, ReviewItem, Thread

    queues = list(Queue.objects.filter(slug__startswith=SLUG).values_list("pk", flat=True))
    if queues:
        threads = Thread.objects.filter(queue_id__in=queues)
        AuditEvent.objects.filter(thread__in=threads).delete()
        with connection.cursor() as cursor:  # a million rows: not one ORM delete per row
            placeholders = ", ".join(["%s"] * len(queues))
            for table in ("reviewdesk_reviewitem", "reviewdesk_thread"):
                cursor.execute(f"DELETE FROM {table} WHERE queue_id IN ({placeholders})", queues)
        ReviewItem.objects.filter(queue_id__in=queues).delete()
        threads.delete()
        Queue.objects.filter(pk__in=queues).delete()
    get_user_model().objects.filter(username=USERNAME).delete()
    Group.objects.filter(name=SLUG).delete()


# --- timing ---------------------------------------------------------------------------------------


def _time_pages(setup: dict[str, Any], size: int) -> dict[str, float]:
    from django.test import Client

    from reviewdesk.models import ReviewItem
    from reviewdesk.queries import inbox

    client = Client()
    client.force_login(setup["user"])
    middle = (
        ReviewItem.objects.filter(queue=setup["queue"], interrupt_id=f"bench-{size // 2}")
        .only("created_at", "id", "priority")
        .get()
    )
    cursor = inbox.encode_cursor(middle, inbox.Filters())
    item = ReviewItem.objects.filter(queue=setup["queue"]).only("pk").first()

    def get(url: str) -> Callable[[], Any]:
        def run() -> None:
            response = client.get(url, SERVER_NAME="127.0.0.1")
            if response.status_code != 200:
                raise RuntimeError(f"{url}: HTTP {response.status_code}")

        return run

    user = setup["user"]
    return {
        "first": _median_ms(get("/"), f"first{size}"),
        "later": _median_ms(get(f"/?after={cursor}"), f"later{size}"),
        "count": _median_ms(get("/items/count/"), f"count{size}"),
        "item": _median_ms(get(f"/items/{item.pk}/"), f"item{size}"),
        "query": _median_ms(lambda: inbox.review_items_page(user, inbox.Filters(), size=50)),
        "old": _median_ms(lambda: _old_first_page(user)),
    }


def _old_first_page(user: Any) -> None:
    """The queue's read before the workbench: a subquery of the user's queues, 200 rows."""
    from reviewdesk.models import ReviewItem
    from reviewdesk.queries import inbox

    queues = inbox.queues_for_user(user)  # a subquery: the plan cannot walk one queue's index
    list(
        ReviewItem.objects.filter(queue__in=queues, status=ReviewItem.Status.PENDING)
        .select_related("thread", "queue", "answered_by")
        .order_by("created_at", "id")[:200]
    )


CPU: dict[str, float] = {}  # figure key → median CPU ms of this process, for the note


def _median_ms(run: Callable[[], Any], key: str = "") -> float:
    """Median wall time of REPEATS runs (on a shared machine the median resists neighbours);
    the median CPU time of this process is kept for the row's note (the wall time of a loaded
    2-core box is several times the work done)."""
    for _ in range(3):  # warm: templates compiled, connections open, caches filled
        run()
    samples, cpu = [], []
    for _ in range(REPEATS):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        samples.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    if key:
        CPU[key] = statistics.median(cpu)
    return statistics.median(samples)
