"""Threads (graph runs), review items (pending interrupts), queues and the audit log."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models


class Queue(models.Model):
    """A review queue; reviewers see the queues one of their groups belongs to."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    groups = models.ManyToManyField(Group, blank=True, related_name="review_queues")

    class Meta:
        ordering: ClassVar = ["name"]

    def __str__(self) -> str:
        return self.name


class Thread(models.Model):
    """One run of a registered graph; its id is the LangGraph thread_id."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        INTERRUPTED = "interrupted"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    # Statuses in which the worker still owes the thread a run.
    ACTIVE: ClassVar = (Status.QUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    graph = models.CharField(max_length=200, db_index=True)
    input = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    # Runs started but not finished since the last success; bounds redelivery of a run that
    # keeps killing its worker (task_reject_on_worker_lost has no retry cap of its own).
    attempts = models.PositiveIntegerField(default=0)
    # Set by a retry of a failed run: the next advance clears the failed step before re-running.
    retry_requested = models.BooleanField(default=False)
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="threads")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at"]
        indexes: ClassVar = [models.Index(fields=["status", "updated_at"])]

    def __str__(self) -> str:
        return f"{self.graph} {self.id}"

    @property
    def langgraph_config(self) -> dict[str, Any]:
        return {"configurable": {"thread_id": str(self.id)}}


class ReviewItem(models.Model):
    """One pending interrupt of a thread, and the human decision on it."""

    class Status(models.TextChoices):
        PENDING = "pending"  # waiting for a reviewer
        ANSWERED = "answered"  # decision recorded, resume not yet applied by a worker
        APPLIED = "applied"  # the graph consumed the answer
        SUPERSEDED = "superseded"  # the interrupt went away without this item's answer

    # The only moves an item may make; anything else is a bug or a lost race.
    TRANSITIONS: ClassVar[dict[str, set[str]]] = {
        Status.PENDING: {Status.ANSWERED, Status.SUPERSEDED},
        Status.ANSWERED: {Status.APPLIED, Status.SUPERSEDED},
        # The checkpointer asks the same interrupt id again (e.g. a sibling branch re-ran).
        Status.APPLIED: {Status.PENDING},
        Status.SUPERSEDED: {Status.PENDING},
    }
    OPEN: ClassVar = (Status.PENDING, Status.ANSWERED)

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="items")
    interrupt_id = models.CharField(max_length=128)
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="items")
    value = models.JSONField(null=True, blank=True)  # surfaced by the graph: untrusted
    response_schema = models.JSONField(null=True, blank=True)
    node = models.CharField(max_length=200, blank=True)
    namespace = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    answer = models.JSONField(null=True, blank=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="answered_items",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["created_at", "id"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["thread", "interrupt_id"], name="item_unique_interrupt")
        ]
        indexes: ClassVar = [models.Index(fields=["queue", "status", "created_at", "id"])]

    def __str__(self) -> str:
        return f"item {self.pk} ({self.status})"

    def can_move_to(self, status: str) -> bool:
        return status in self.TRANSITIONS.get(self.status, set())

    def move_to(self, status: str) -> None:
        """Change status, refusing moves the state machine does not allow."""
        if not self.can_move_to(status):
            raise InvalidTransition(f"review item {self.pk}: {self.status} -> {status}")
        self.status = status


class InvalidTransition(Exception):
    """A review item was asked to make a move its state machine forbids."""


class AuditEvent(models.Model):
    """Append-only record of every action by every actor (people, workers, the reconciler)."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # Who acted when no user did: "worker", "reconciler", "command", ...
    actor_label = models.CharField(max_length=100, blank=True)
    action = models.CharField(max_length=50)
    thread = models.ForeignKey(
        Thread, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events"
    )
    item = models.ForeignKey(
        ReviewItem, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events"
    )
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering: ClassVar = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise PermissionError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError("audit events are append-only")
