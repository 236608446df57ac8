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
    # A staff action the next run carries out under the run mutex ("replay" from a past
    # checkpoint, "edit" the state then continue), with what it needs (services/history.py):
    # kept until the run that did it records its outcome, so a worker that dies mid-way
    # leaves the action owed rather than lost. Database defaults on the new columns keep
    # raw-SQL writers (the bench's bulk fills) working.
    action = models.CharField(max_length=20, blank=True, default="", db_default="")
    action_data = models.JSONField(null=True, blank=True)
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="threads")
    # Who holds the thread's run mutex now ("host/pid"), and since when: shown to people, never
    # trusted for exclusion (the mutex itself tells a live run from a dead one).
    worker = models.CharField(max_length=200, blank=True)
    run_started_at = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at"]
        # The staff thread list pages by (created_at, id), optionally within one graph or
        # status (queries/history.py): keyset pages by index at 100k threads and more.
        indexes: ClassVar = [
            models.Index(fields=["status", "updated_at"]),
            models.Index(fields=["created_at", "id"], name="thread_created"),
            models.Index(fields=["graph", "created_at", "id"], name="thread_graph_created"),
            models.Index(fields=["status", "created_at", "id"], name="thread_status_created"),
            models.Index(fields=["started_by", "created_at", "id"], name="thread_starter_created"),
            # The counts per status within one graph read this index alone.
            models.Index(fields=["graph", "status"], name="thread_graph_status"),
        ]

    def __str__(self) -> str:
        return f"{self.graph} {self.id}"

    @property
    def langgraph_config(self) -> dict[str, Any]:
        return {"configurable": {"thread_id": str(self.id)}}


class Run(models.Model):
    """One run of a thread's graph by a worker: plan → run → record.

    Written by the engine only. A run whose worker died keeps no finish until the next run of
    its thread marks it lost, so how long steps take, who ran them and which runs died are
    database facts every web and worker process reads alike.
    """

    class Outcome(models.TextChoices):
        RUNNING = "", "running"
        INTERRUPTED = "interrupted"  # stopped at questions (or a breakpoint)
        QUEUED = "queued"  # stopped with answers already waiting: the next run follows
        COMPLETED = "completed"
        FAILED = "failed"
        LOST = "lost"  # the worker died before recording an outcome

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=20)  # start, resume, continue, recover, retry
    task_id = models.CharField(max_length=200, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    items = models.CharField(max_length=500, blank=True)  # ids of the answers it delivered
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering: ClassVar = ["started_at", "id"]
        indexes: ClassVar = [models.Index(fields=["thread", "started_at"])]

    def __str__(self) -> str:
        return f"{self.kind} run of {self.thread_id} ({self.outcome or 'running'})"

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish, None while running."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


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

    class Kind(models.TextChoices):
        INTERRUPT = "interrupt"  # a node called interrupt(value)
        BREAKPOINT = "breakpoint"  # a static breakpoint (interrupt_before/after) paused the run

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="items")
    # The interrupt's id; for a breakpoint, "breakpoint:<checkpoint id>" of the paused checkpoint.
    interrupt_id = models.CharField(max_length=128)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.INTERRUPT)
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
    # Workbench: a claim is a lease (services/claims.py); it counts only until claimed_until,
    # so a reviewer who walked away never blocks an item for longer than the lease.
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="claimed_items",
    )
    claimed_until = models.DateTimeField(null=True, blank=True)
    # Higher first when a view sorts by priority; 0 unless something sets it.
    priority = models.SmallIntegerField(default=0)
    # History: the item this one asks again (a staff replay or state edit re-fired its question).
    repeats = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="repeated_by"
    )
    # The decision record: a hash of the payload the reviewer answered (so a payload that
    # changed afterwards shows), and how they were logged in when they decided.
    payload_hash = models.CharField(max_length=64, blank=True, default="", db_default="")
    answered_via = models.CharField(max_length=300, blank=True, default="", db_default="")

    class Meta:
        ordering: ClassVar = ["created_at", "id"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["thread", "interrupt_id"], name="item_unique_interrupt")
        ]
        # Every list view reads one queue at a time along one of these, in its own order
        # (queries/inbox.py): keyset pages stay as fast at a million items as at ten thousand.
        indexes: ClassVar = [
            models.Index(fields=["queue", "status", "created_at", "id"]),
            # Ops: decisions of the last hours (time to decision, per reviewer) by index; the
            # workbench's Recently decided view reads it too.
            models.Index(fields=["queue", "answered_at"], name="item_queue_answered"),
            models.Index(
                fields=["queue", "status", "-priority", "created_at", "id"],
                name="item_queue_priority",
            ),
            models.Index(fields=["queue", "created_at", "id"], name="item_queue_created"),
            models.Index(fields=["answered_by", "answered_at", "id"], name="item_decided_by"),
            # Ops: the claimed count reads only claimed rows (a scan of a million pending
            # items took 3 s on SQLite without it).
            models.Index(
                fields=["queue", "claimed_until"],
                condition=models.Q(claimed_by__isnull=False),
                name="item_queue_claimed",
            ),
        ]

    def __str__(self) -> str:
        return f"item {self.pk} ({self.status})"

    def can_move_to(self, status: str) -> bool:
        return status in self.TRANSITIONS.get(self.status, set())

    def move_to(self, status: str) -> None:
        """Change status, refusing moves the state machine does not allow."""
        if not self.can_move_to(status):
            raise InvalidTransition(f"review item {self.pk}: {self.status} -> {status}")
        self.status = status

    def claim_holder(self, now: Any = None) -> int | None:
        """The user id whose claim on the item is still running, if any."""
        from django.utils import timezone

        if self.claimed_by_id is None or self.claimed_until is None:
            return None
        return self.claimed_by_id if self.claimed_until > (now or timezone.now()) else None


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
    # SET_NULL: deleting a thread (a staff action) keeps its audit trail; the deletion's own
    # record names the thread's id.
    thread = models.ForeignKey(
        Thread, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    item = models.ForeignKey(
        ReviewItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering: ClassVar = ["created_at", "id"]
        # Ops: recent events of one action (first claims) by index.
        indexes: ClassVar = [models.Index(fields=["action", "created_at"], name="audit_action_at")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise PermissionError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError("audit events are append-only")


# --- ops: tallies, stuck threads, alerts -------------------------------------------------------


class OpsTally(models.Model):
    """A delta of one figure, written by database triggers (see ``reviewdesk/tally.py``).

    Counting a million rows at every scrape is too slow, and counters kept in Python miss
    writes that do not go through the model (``update()``, bulk SQL, another process). Triggers
    on items, threads, runs and audit events append deltas here inside the writer's own
    transaction, so the sums are exact for every reader; rows are only ever inserted (no
    contention on a counter row) and beat folds them together now and then.
    """

    queue_id = models.BigIntegerField(null=True)
    metric = models.CharField(max_length=20)
    label = models.CharField(max_length=200, blank=True)
    le = models.CharField(max_length=20, blank=True)  # a histogram bucket's upper bound
    hour = models.BigIntegerField(null=True)  # hours since the epoch (UTC), when it matters
    n = models.BigIntegerField(default=0)
    seconds = models.FloatField(default=0)

    class Meta:
        indexes: ClassVar = [models.Index(fields=["metric", "queue_id", "hour"])]

    def __str__(self) -> str:
        return f"{self.metric} {self.label} {self.le} {self.hour}: {self.n:+d}"


class StuckThread(models.Model):
    """A thread the ops sweep found stuck, by kind; deleted once a sweep no longer finds it."""

    class Kind(models.TextChoices):
        INTERRUPTED_NO_ITEM = "interrupted_no_item", "interrupted with no open item"
        ITEM_NO_INTERRUPT = "item_no_interrupt", "open item whose interrupt is gone"
        RUNNING_NO_WORKER = "running_no_worker", "running with no live worker"
        ANSWERED_NOT_APPLIED = "answered_not_applied", "answered but never applied"

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="stuck")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    detail = models.TextField(blank=True)
    found_at = models.DateTimeField()
    seen_at = models.DateTimeField()

    class Meta:
        ordering: ClassVar = ["found_at", "id"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["thread", "kind"], name="stuck_unique_kind")
        ]

    def __str__(self) -> str:
        return f"{self.thread_id} {self.kind}"


class QueueAlerting(models.Model):
    """Per-queue thresholds the beat checks, where to send alerts, and when items are overdue."""

    queue = models.OneToOneField(Queue, on_delete=models.CASCADE, related_name="alerting")
    overdue_after = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds a pending item may wait before it is overdue."
    )
    max_oldest_age = models.PositiveIntegerField(
        null=True, blank=True, help_text="Alert when the oldest pending item is older (seconds)."
    )
    max_pending = models.PositiveIntegerField(
        null=True, blank=True, help_text="Alert when more items than this are pending."
    )
    max_failed = models.PositiveIntegerField(
        null=True, blank=True, help_text="Alert when more threads than this have failed."
    )
    emails = models.TextField(blank=True, help_text="Comma-separated addresses.")
    webhook_url = models.URLField(blank=True, max_length=500)
    cooldown = models.PositiveIntegerField(
        default=900, help_text="Seconds between two notices about the same alert."
    )

    def __str__(self) -> str:
        return f"alerting for {self.queue}"


class Alert(models.Model):
    """The current state of one threshold of one queue, and what was last sent about it."""

    class Kind(models.TextChoices):
        OLDEST_AGE = "oldest_age"
        PENDING = "pending"
        FAILED = "failed"

    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    firing = models.BooleanField(default=False)
    value = models.FloatField(default=0)
    threshold = models.FloatField(default=0)
    changed_at = models.DateTimeField()
    notified = models.CharField(max_length=10, blank=True)  # "firing" / "resolved" last sent
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["queue", "kind"], name="alert_unique_kind")
        ]

    def __str__(self) -> str:
        return f"{self.queue} {self.kind} {'firing' if self.firing else 'ok'}"


class AlertNotice(models.Model):
    """One notice (firing or resolved) and how its delivery went: the delivery log."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notices")
    state = models.CharField(max_length=10)  # firing / resolved
    value = models.FloatField()
    threshold = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)
    email_status = models.CharField(max_length=200, blank=True)
    webhook_status = models.CharField(max_length=200, blank=True)
    webhook_attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering: ClassVar = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.alert} {self.state}"


class Draft(models.Model):
    """What a reviewer has typed into an item's answer form and not sent yet (one per person).

    Saved as they type, so leaving, reloading or losing a race to another reviewer never
    throws their work away; deleted when their answer is accepted.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="drafts")
    # The form's fields as posted: {"name": ["value", ...]}.
    data = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["user", "item"], name="draft_unique_user_item")
        ]

    def __str__(self) -> str:
        return f"draft of {self.user_id} on item {self.item_id}"


class ItemViewer(models.Model):
    """Someone has an item's page open; refreshed by the page's heartbeat, gone on leave."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="viewers")
    seen_at = models.DateTimeField()

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["user", "item"], name="viewer_unique_user_item")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} viewing item {self.item_id}"
