"""`manage.py startrun GRAPH --input JSON`: start a thread; its id is the last line printed."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from reviewdesk import payloads
from reviewdesk.engine import registry
from reviewdesk.services import threads


class Command(BaseCommand):
    help = "Start a thread of a registered graph and print its id (last line)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("graph", help="registered graph name")
        parser.add_argument("--input", default="{}", help="the graph's input as JSON")
        parser.add_argument("--user", help="record this username as the starter")

    def handle(self, *args: Any, graph: str, input: str, user: str | None, **options: Any) -> None:
        try:
            value = payloads.parse_json(input)
        except payloads.AnswerError as exc:
            raise CommandError(f"--input: {exc}") from None
        starter = None
        if user:
            if "\x00" in user:  # PostgreSQL cannot even compare a string holding NUL
                raise CommandError("--user must not contain a NUL character.")
            starter = get_user_model().objects.filter(username=user).first()
            if starter is None:
                raise CommandError(f"No user named {user!r}.")
        try:
            thread = threads.thread_start(
                graph=graph, input=value, user=starter, actor_label="command"
            )
        except registry.UnknownGraph:
            names = ", ".join(registry.graph_specs()) or "none"
            raise CommandError(f"No graph named {graph!r}. Registered: {names}.") from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(str(thread.pk))
