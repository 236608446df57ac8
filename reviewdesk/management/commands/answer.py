"""`manage.py answer ITEM_ID --json VALUE --user USERNAME`: answer as that user.

Goes through the same service and validation as the web form; refusals exit non-zero. Like a
reviewer starting to answer, it claims the item for its user first: an item someone else has
claimed is refused.
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser

from reviewdesk.models import ReviewItem
from reviewdesk.payloads import AnswerError, parse_json
from reviewdesk.services import claims, items


class Command(BaseCommand):
    help = "Answer a review item as a user, exactly as the web form would."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("item_id", type=int)
        parser.add_argument("--json", required=True, dest="value", help="the answer as JSON")
        parser.add_argument("--user", required=True, help="username of the reviewer")

    def handle(self, *args: Any, item_id: int, value: str, user: str, **options: Any) -> None:
        if "\x00" in user:  # PostgreSQL cannot even compare a string holding NUL
            raise CommandError("--user must not contain a NUL character.")
        reviewer = get_user_model().objects.filter(username=user, is_active=True).first()
        if reviewer is None:
            raise CommandError(f"No active user named {user!r}.")
        try:
            answer = parse_json(value)
        except AnswerError as exc:
            raise CommandError(f"--json: {exc}") from None
        try:
            claims.review_item_claim(
                item_id=item_id, user=reviewer, implicit=True, actor_label="command"
            )
        except claims.NotPending:
            pass  # decided already: the answer below is refused, or is the same decision again
        except ReviewItem.DoesNotExist:
            raise CommandError(f"No review item {item_id}.") from None
        except PermissionDenied as exc:
            raise CommandError(f"Refused: {exc}") from None
        except claims.Conflict as exc:
            raise CommandError(f"Refused: {exc}") from None
        try:
            item = items.review_item_answer(
                item_id=item_id, reviewer=reviewer, answer=answer, via="command (manage.py answer)"
            )
        except ReviewItem.DoesNotExist:
            raise CommandError(f"No review item {item_id}.") from None
        except PermissionDenied as exc:
            raise CommandError(f"Refused: {exc}") from None
        except (AnswerError, claims.Conflict) as exc:
            # A refused answer must not leave the item claimed by a script for the whole lease.
            with contextlib.suppress(claims.Conflict, ReviewItem.DoesNotExist):
                claims.review_item_release(item_id=item_id, user=reviewer)
            raise CommandError(f"Refused: {exc}") from None
        self.stdout.write(f"Answered item {item.pk}; thread {item.thread_id} queued to resume.")
