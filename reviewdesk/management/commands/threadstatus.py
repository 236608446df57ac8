"""`manage.py threadstatus THREAD_ID`: one JSON object with the status and pending items.

Keys are a contract other tools rely on: thread, status, pending[item, interrupt_id, value].
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from reviewdesk.models import ReviewItem, Thread


class Command(BaseCommand):
    help = "Print a thread's status and pending review items as one JSON object."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("thread_id")

    def handle(self, *args: Any, thread_id: str, **options: Any) -> None:
        try:
            thread = Thread.objects.get(pk=thread_id)
        except (Thread.DoesNotExist, ValidationError):
            raise CommandError(f"No thread with id {thread_id!r}.") from None
        pending = thread.items.filter(status=ReviewItem.Status.PENDING).order_by("created_at", "id")
        status = {
            "thread": str(thread.pk),
            "status": thread.status,
            "pending": [
                {"item": item.pk, "interrupt_id": item.interrupt_id, "value": item.value}
                for item in pending
            ],
        }
        if thread.error:
            status["error"] = thread.error
        self.stdout.write(json.dumps(status, ensure_ascii=False))
