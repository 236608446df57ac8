"""Ops figures at scale: the ops page's aggregates and a /metrics scrape at 10k and 1M items.

``measure(*, quick)`` is discovered by ``manage.py bench``, which calls it once per database.
Each size runs in a child process on a scratch database of its own (a temporary SQLite file;
on PostgreSQL a database named ``<current name>_opsbench`` on the same server), seeded with
bulk SQL — the tally triggers fire for every row, as they would for real writes — so nothing
touches the bench desk's own data. Sizes: 10k and 1M (``quick``: 10k and 100k; ``--tiny``:
1k and 2k).

Reference: the exact ``COUNT(*)`` of one queue's pending items at the same size, the query
the ops page would run without the tally. Target: ≤ 50 ms at 1M items and 1M/10k ≤ 1.5.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

TARGET_MS = 50.0
TARGET_RATIO = 1.5
SPAN_DAYS = 30  # pending items arrive evenly over this many days
REPEAT = 7


def measure(*, quick: bool) -> list[dict[str, Any]]:
    from reviewdesk import bench

    full = (10_000, 100_000) if quick else (10_000, 1_000_000)
    sizes = (1_000, 2_000) if bench.TINY else full
    out: list[dict[str, Any]] = []
    for vendor, url in _databases():
        results = {size: _child(url, size) for size in sizes}
        small, big = results[sizes[0]], results[sizes[1]]
        label = f"{sizes[1] // 1000}k" if sizes[1] < 1_000_000 else "1M"
        base = f"{sizes[0] // 1000}k"
        for key, name in (("ops_ms", "ops page aggregates"), ("metrics_ms", "/metrics scrape")):
            ratio = big[key] / small[key] if small[key] else float("inf")
            out.append(
                {
                    "figure": f"{name} at {label} items ({vendor})",
                    "value": round(big[key], 2),
                    "unit": "ms",
                    "reference": round(big["count_ms"], 2),
                    "reference_name": f"exact COUNT(*) of pending items at {label}",
                    "target": f"<= {TARGET_MS:g} ms",
                    "pass": big[key] <= TARGET_MS,
                }
            )
            out.append(
                {
                    "figure": f"{name}, {label}/{base} ({vendor})",
                    "value": round(ratio, 2),
                    "unit": "x",
                    "reference": round(small[key], 2),
                    "reference_name": f"ms at {base} items",
                    "target": f"<= {TARGET_RATIO:g}",
                    "pass": ratio <= TARGET_RATIO,
                }
            )
        out.append(
            {
                "figure": f"stuck sweep (beat, background) at {label} items ({vendor})",
                "value": round(big["sweep_ms"], 1),
                "unit": "ms",
                "reference": round(small["sweep_ms"], 1),
                "reference_name": f"ms at {base} items",
                "target": "background (full sweep hourly; beat's are incremental)",
                "pass": True,
            }
        )
    return out


def _databases() -> list[tuple[str, str]]:
    """The database `manage.py bench` is measuring now, as a scratch one beside it."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return [("sqlite", "sqlite")]
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    server = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return [("postgresql", f"{server}/{db['NAME']}_opsbench")]


def _child(url: str, size: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="opsbench-") as tmp:
        if url == "sqlite":
            url = f"sqlite:///{tmp}/bench.sqlite3"
        else:
            _recreate_postgres(url)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REVIEWDESK_VAR_DIR": tmp,
            "DJANGO_SETTINGS_MODULE": "reviewdesk.settings",
        }
        done = subprocess.run(
            [sys.executable, "-m", "reviewdesk.bench.ops_scale", str(size)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if url.startswith("postgres"):
            _drop_postgres(url)
        if done.returncode:
            raise RuntimeError(f"ops_scale child failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def _recreate_postgres(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _drop_postgres(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the child: migrate, seed, time -------------------------------------------------------------


def seed(size: int) -> None:
    """`size` threads with one item each: 95% pending over SPAN_DAYS, 5% decided in 24 h."""
    from django.db import connection

    now = time.time()
    span = SPAN_DAYS * 86400
    decided_every = 20  # every 20th item was decided within the last day
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM reviewdesk_queue WHERE slug = 'default'")
        (queue_id,) = cursor.fetchone()
        if connection.vendor == "postgresql":
            series = f"generate_series(1::bigint, {size}) AS s(x)"
            tid = "lpad(to_hex(x), 32, '0')::uuid"
            ts = "to_timestamp"
        else:
            series = (
                f"(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                f"WHERE x < {size}) SELECT x FROM c)"
            )
            tid = "printf('%032x', x)"
            ts = "datetime"

        def at(expr: str) -> str:
            if connection.vendor == "postgresql":
                return f"to_timestamp({expr})"
            return f"strftime('%Y-%m-%d %H:%M:%f', {expr}, 'unixepoch')"

        created = f"({now} - ((x * 7919) % {span}) - 1)"
        decided = f"({now} - ((x * 104729) % 86000) - 1)"
        is_decided = f"(x % {decided_every} = 0)"
        del ts
        jsonb = "::jsonb" if connection.vendor == "postgresql" else ""
        cursor.execute(
            "INSERT INTO reviewdesk_thread (id, graph, input, status, error, traceback, "
            "attempts, retry_requested, queue_id, worker, created_at, updated_at) "
            f"SELECT {tid}, 'age', '{{}}', CASE WHEN {is_decided} THEN 'completed' "
            f"ELSE 'interrupted' END, '', '', 0, FALSE, {queue_id}, '', {at(created)}, "
            f"{at(created)} FROM {series}"
        )
        cursor.execute(
            "INSERT INTO reviewdesk_reviewitem (thread_id, interrupt_id, kind, queue_id, value, "
            "node, namespace, status, priority, answer, created_at, updated_at, answered_at, "
            "applied_at) "
            f"SELECT {tid}, 'i' || x, 'interrupt', {queue_id}, '\"What is your age?\"', "
            f"'ask', '', CASE WHEN {is_decided} THEN 'applied' ELSE 'pending' END, 0, "
            f"CASE WHEN {is_decided} THEN '\"42\"'{jsonb} END, "
            f"CASE WHEN {is_decided} THEN {at(decided + ' - 300')} ELSE {at(created)} END, "
            f"{at(created)}, CASE WHEN {is_decided} THEN {at(decided)} END, "
            f"CASE WHEN {is_decided} THEN {at(decided)} END FROM {series}"
        )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def _timed(function: Any) -> float:
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def child(size: int) -> dict[str, float]:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from reviewdesk import tally
    from reviewdesk.engine import stuck
    from reviewdesk.models import ReviewItem
    from reviewdesk.queries import ops
    from reviewdesk.views.ops import DeskCollector

    seeded = time.perf_counter()
    seed(size)
    seed_s = time.perf_counter() - seeded
    tally.tally_compact()
    assert (
        ops.queue_figures(detail=False)[0].items.get("pending", 0)
        == ReviewItem.objects.filter(status="pending").count()
    )

    def ops_page() -> None:
        ops.queue_figures()
        ops.thread_counts()
        ops.stuck_counts()
        ops.threads_failed()
        ops.threads_running_long()
        ops.stuck_threads()

    def scrape() -> None:
        list(DeskCollector().collect())

    def count() -> None:
        ReviewItem.objects.filter(queue_id=1, status="pending").count()

    sweep_started = time.perf_counter()
    stuck.stuck_sweep()
    sweep_ms = (time.perf_counter() - sweep_started) * 1000
    return {
        "size": size,
        "seed_s": round(seed_s, 1),
        "ops_ms": _timed(ops_page),
        "metrics_ms": _timed(scrape),
        "count_ms": _timed(count),
        "sweep_ms": sweep_ms,
    }


if __name__ == "__main__":
    print(json.dumps(child(int(sys.argv[1]))))
