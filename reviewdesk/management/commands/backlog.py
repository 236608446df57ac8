"""`python manage.py backlog [--json]`: the ops page's figures in a terminal (stable JSON keys)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from reviewdesk.queries import ops


class Command(BaseCommand):
    help = "Backlog per queue, threads by status, stuck threads and workers."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON document (a contract)")

    def handle(self, *args: Any, **options: Any) -> None:
        figures = ops.queue_figures(detail=False)
        machinery = ops.machinery()
        workers = [
            {
                "name": w.get("name"),
                "online": w.get("online"),
                "active": w.get("active"),
                "reserved": w.get("reserved"),
                "queues": w.get("queues"),
                "heartbeat_age_s": w.get("heartbeat_age_s"),
            }
            for w in machinery["workers"]
        ]
        report = {
            "queues": [f.as_json() for f in figures],
            "threads": ops.thread_counts(),
            "stuck": ops.stuck_counts(),
            "workers": workers,
        }
        if options["json"]:
            self.stdout.write(json.dumps(report, sort_keys=True))
            return
        self.stdout.write(
            f"{'queue':<20} {'pending':>8} {'claimed':>8} {'overdue':>8} {'oldest':>10} "
            f"{'decided/h':>10}"
        )
        for row in report["queues"]:
            age = row["oldest_pending_age_s"]
            self.stdout.write(
                f"{row['queue']:<20} {row['pending']:>8} {row['claimed']:>8} "
                f"{row['overdue']:>8} {'-' if age is None else f'{age:.0f} s':>10} "
                f"{row['decided_last_hour']:>10}"
            )
        self.stdout.write("threads: " + ", ".join(f"{k} {v}" for k, v in report["threads"].items()))
        self.stdout.write("stuck:   " + ", ".join(f"{k} {v}" for k, v in report["stuck"].items()))
        for w in workers:
            state = "online" if w["online"] else "OFFLINE"
            self.stdout.write(
                f"worker {w['name']}: {state}, active {w['active']}, reserved {w['reserved']}, "
                f"queues {','.join(w['queues'] or [])}, heartbeat {w['heartbeat_age_s']} s ago"
            )
