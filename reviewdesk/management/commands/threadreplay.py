"""`manage.py threadreplay THREAD_ID --checkpoint ID --user NAME --reason TEXT`: time travel.

The same service as the thread page's Replay button (services/history.py): the questions
pending at that checkpoint are asked again as new items, linked to the ones they repeat.
Refused, with a non-zero exit, for an unknown checkpoint, a user who is not staff, or an
empty reason.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from reviewdesk.engine import registry
from reviewdesk.models import Thread
from reviewdesk.services import history


class Command(BaseCommand):
    help = "Replay a thread from one of its past checkpoints (staff, with a reason)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("thread_id")
        parser.add_argument("--checkpoint", required=True, help="a checkpoint id of the thread")
        parser.add_argument("--user", required=True, help="username of a staff member")
        parser.add_argument("--reason", required=True, help="why (kept in the audit log)")

    def handle(
        self, *args: Any, thread_id: str, checkpoint: str, user: str, reason: str, **options: Any
    ) -> None:
        if "\x00" in user:
            raise CommandError("--user must not contain a NUL character.")
        actor = get_user_model().objects.filter(username=user, is_active=True).first()
        if actor is None:
            raise CommandError(f"No active user named {user!r}.")
        try:
            thread = history.thread_replay(
                thread_id=thread_id, checkpoint_id=checkpoint, user=actor, reason=reason
            )
        except (Thread.DoesNotExist, ValidationError):
            raise CommandError(f"No thread with id {thread_id!r}.") from None
        except PermissionDenied as exc:
            raise CommandError(f"Refused: {exc}") from None
        except (history.Refused, registry.UnknownGraph) as exc:
            raise CommandError(f"Refused: {exc}") from None
        self.stdout.write(
            f"Thread {thread.pk} queued to replay from checkpoint {checkpoint}; "
            "the questions pending there will be asked again."
        )
