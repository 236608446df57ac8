"""SQL statements per answer POST and per worker cycle, counted with Django's query capture.

Both run inside the bench process, on the scratch database: the answer through Django's test
client (the real view, middleware and session), the worker cycle by calling the engine as the
task does. Enqueueing is switched off meanwhile, so the live worker does not run them too.
Checkpointer statements are not Django's and are not counted.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

from reviewdesk import bench
from reviewdesk.bench.desk import current, say

ORDER = 80


# Transaction control is captured on SQLite (BEGIN IMMEDIATE, COMMIT) but not on PostgreSQL
# (psycopg begins implicitly, commits through the connection): counted apart, so both compare.
_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


def _row(figure: str, queries: list[dict[str, str]]) -> dict[str, Any]:
    statements = [q["sql"] for q in queries]
    control = [s for s in statements if s.upper().startswith(_CONTROL)]
    note = f"+ {len(control)} BEGIN/COMMIT" if control else ""
    return {
        **bench.row(figure, len(statements) - len(control), "", note=note),
        "statements": [s[:200] for s in statements],
    }


def measure(*, quick: bool) -> list[dict[str, Any]]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from reviewdesk import tasks
    from reviewdesk.engine import runs
    from reviewdesk.models import ReviewItem

    desk = current()
    say(f"{desk.backend}: counting SQL statements per answer POST and per worker cycle")
    browser = Client(HTTP_HOST="127.0.0.1")
    browser.force_login(User.objects.get(username=desk.reviewer(6)))
    post: list[dict[str, str]] = []
    cycle: list[dict[str, str]] = []
    with mock.patch.object(tasks.thread_advance, "apply_async"):
        thread_id = desk.thread_start(desk.tag("sql"))
        runs.thread_advance(thread_id=thread_id)
        for n in range(3):  # the last round counts: caches are warm, as in a running desk
            item = ReviewItem.objects.get(thread_id=thread_id, status="pending")
            browser.get(f"/items/{item.pk}/")
            with CaptureQueriesContext(connection) as captured:
                answered = browser.post(
                    f"/items/{item.pk}/answer/",
                    {"mode": "text", "answer": f"a{n}"},
                    headers={"HX-Request": "true", "HX-Target": "answer-panel"},
                )
            if answered.status_code != 200:
                raise RuntimeError(f"answer POST: HTTP {answered.status_code}")
            post = captured.captured_queries
            with CaptureQueriesContext(connection) as captured:
                runs.thread_advance(thread_id=thread_id)
            cycle = captured.captured_queries
    desk.settle()
    return [
        _row("SQL statements per answer POST", post),
        _row("SQL statements per worker cycle (resume → next question)", cycle),
    ]
