"""`manage.py seeddemo`: a demo reviewer and admin, and a thread of each graph with an example."""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandParser

from reviewdesk.engine import registry
from reviewdesk.models import Thread
from reviewdesk.services import threads as thread_services


class Command(BaseCommand):
    help = "Create demo accounts (printing their logins) and start demo threads if none exist."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--threads", type=int, default=1, help="threads per example graph")

    def handle(self, *args: Any, threads: int, **options: Any) -> None:
        password = os.environ.get("REVIEWDESK_DEMO_PASSWORD", "reviewdesk-demo")
        users = get_user_model().objects
        reviewer, created = users.get_or_create(username="reviewer")
        if created:
            reviewer.set_password(password)
            reviewer.save()
        reviewer.groups.add(Group.objects.get_or_create(name="reviewers")[0])
        admin, created = users.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            admin.set_password(password)
            admin.save()

        if not Thread.objects.exists():
            for name, spec in registry.graph_specs().items():
                if spec.example_input is None:
                    continue  # it cannot say what a valid input looks like: {} would just fail
                for _ in range(threads):
                    thread_services.thread_start(
                        graph=name, input=spec.example_input, user=admin, actor_label="seeddemo"
                    )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo logins: reviewer / {password} (reviews the default queue), "
                f"admin / {password} (staff: start threads, inspect them)."
            )
        )
