"""`manage.py threadhistory THREAD_ID`: a thread's whole history as one JSON object.

Keys are a contract scripts rely on: thread, status, timeline[at, kind, ...] (oldest first),
from the same query the thread page renders (queries/history.py).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from reviewdesk.models import Thread
from reviewdesk.queries import history


class Command(BaseCommand):
    help = "Print a thread's history (every step and decision, oldest first) as one JSON object."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("thread_id")

    def handle(self, *args: Any, thread_id: str, **options: Any) -> None:
        try:
            thread = Thread.objects.select_related("started_by").get(pk=thread_id)
        except (Thread.DoesNotExist, ValidationError):
            raise CommandError(f"No thread with id {thread_id!r}.") from None
        self.stdout.write(json.dumps(history.thread_history(thread), ensure_ascii=False))
