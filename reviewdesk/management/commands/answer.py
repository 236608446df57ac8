"""`manage.py answer ITEM_ID --json VALUE --user USERNAME`: answer as that user.

Goes through the same service and validation as the web form; refusals exit non-zero.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser

from reviewdesk import services
from reviewdesk.models import ReviewItem
from reviewdesk.payloads import AnswerError


class Command(BaseCommand):
    help = "Answer a review item as a user, exactly as the web form would."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("item_id", type=int)
        parser.add_argument("--json", required=True, dest="value", help="the answer as JSON")
        parser.add_argument("--user", required=True, help="username of the reviewer")

    def handle(self, *args: Any, item_id: int, value: str, user: str, **options: Any) -> None:
        reviewer = get_user_model().objects.filter(username=user, is_active=True).first()
        if reviewer is None:
            raise CommandError(f"No active user named {user!r}.")
        try:
            answer = json.loads(value)
        except ValueError as exc:
            raise CommandError(f"--json is not valid JSON: {exc}") from None
        try:
            item = services.review_item_answer(item_id=item_id, reviewer=reviewer, answer=answer)
        except ReviewItem.DoesNotExist:
            raise CommandError(f"No review item {item_id}.") from None
        except PermissionDenied as exc:
            raise CommandError(f"Refused: {exc}") from None
        except (AnswerError, services.AlreadyDecided) as exc:
            raise CommandError(f"Refused: {exc}") from None
        self.stdout.write(f"Answered item {item.pk}; thread {item.thread_id} queued to resume.")
