"""Advancing a thread: plan what it is owed, run the graph, record the outcome.

A run of a real agent waits seconds or minutes on models and tools, so no database transaction
or row lock is held while the graph runs. Each round has three phases, all inside the thread's
run mutex (``engine.locks``: at most one run per thread, across processes and machines):

1. **plan**, in a short transaction under the thread's row lock: read what the desk owes the
   thread (its status, answered items) against the checkpointer, count the attempt, show
   "running";
2. **run** the graph with no transaction open (``invoke``, or ``ainvoke`` on the engine loop for
   graphs with async-only nodes);
3. **record**, in a short transaction: mark the answers the run consumed applied, mirror the
   checkpointer's pending questions into review items, set the status.

Answers, retries and the reconciler only ever wait for phases 1 and 3. A delivery of the task
that finds the mutex taken returns at once ("busy"): the holder plans again before letting go,
and checks once more after letting go, so an answer that lands mid-run is never dropped. Any
number of copies of the task, at any moment, are harmless: only a run that really starts under
the mutex counts an attempt.
"""

from __future__ import annotations

import logging
import os
import socket
import traceback as tb
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from langgraph.errors import InvalidUpdateError
from langgraph.types import Command, StateUpdate

from reviewdesk import events
from reviewdesk.engine import aio, locks, registry
from reviewdesk.models import AuditEvent, ReviewItem, Run, Thread
from reviewdesk.payloads import to_storable
from reviewdesk.services.audit import audit, audit_row

if TYPE_CHECKING:
    from langgraph.pregel import Pregel
    from langgraph.types import StateSnapshot

log = logging.getLogger(__name__)

# Rounds one task carries out for one thread before it hands the rest to a fresh task, so a
# thread whose answers keep arriving as fast as it runs cannot hold a worker slot forever.
MAX_ROUNDS = 20
BREAKPOINT_PREFIX = "breakpoint:"
# Metadata stamped on the checkpoint a breakpoint's state edit creates: a re-planned round
# sees the edit already applied and does not apply it twice.
BREAKPOINT_EDIT_KEY = "reviewdesk_breakpoint_item"
# Staff actions a run carries out (services/history.py queues them on the thread row): replay
# from a past checkpoint, or edit the state and continue. Every checkpoint such a run writes is
# stamped with the action's token, so a re-planned round (its worker died) does not do it twice.
ACTIONS = ("replay", "edit")
ACTION_TOKEN_KEY = "reviewdesk_action"


@dataclass(frozen=True)
class Pause:
    """A static breakpoint (``interrupt_before``/``interrupt_after``) holding the run."""

    checkpoint_id: str
    where: str  # "before" or "after" the nodes; "at" when LangGraph does not say which
    nodes: tuple[str, ...]

    @property
    def key(self) -> str:
        return BREAKPOINT_PREFIX + self.checkpoint_id

    @property
    def value(self) -> dict[str, Any]:
        """What the review item shows: where the graph paused."""
        return {"breakpoint": self.where, "nodes": list(self.nodes)}


# The answer a breakpoint item takes: continue, optionally with a state edit applied first.
BREAKPOINT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"const": "continue"},
        "state_update": {"type": "object"},
    },
    "required": ["action"],
    "additionalProperties": False,
}


@dataclass
class Plan:
    kind: str  # start | resume | continue | recover | retry | record | replay | edit
    payload: Any = None
    answers: list[ReviewItem] = field(default_factory=list)
    state_update: dict[str, Any] | None = None
    pause: Pause | None = None


class _RunsAsync(Exception):
    """A sync run reached an async-only node or tool: plan again and run it with ainvoke."""


def worker_name() -> str:
    return f"{socket.gethostname()}/{os.getpid()}"


# --- the task's entry point -----------------------------------------------------------------


def thread_advance(*, thread_id: UUID | str, task_id: str = "") -> str:
    """Do whatever the thread is owed, under its run mutex; return what was done last.

    "busy" means another live run holds the thread; it will pick up anything owed.
    """
    thread_id = str(thread_id)
    outcome = ""
    rounds = 0
    while rounds < MAX_ROUNDS:
        with locks.holding(thread_id) as held:
            if held is None:
                return outcome or "busy"
            while rounds < MAX_ROUNDS:
                step = _advance_once(thread_id, task_id, held)
                if step is None:
                    break
                outcome, rounds = step.outcome, rounds + 1
                if not step.owed:
                    break
        # An answer committed after our last plan but before the release found the mutex taken
        # and returned: it is ours to run.
        if not _owed(thread_id):
            return outcome or "nothing to do"
        rounds += 1
    # Answers keep arriving as fast as the thread runs: let other threads have this slot.
    from reviewdesk import tasks

    tasks.thread_advance.delay(thread_id)
    return outcome or "handed on"


@dataclass(frozen=True)
class _Round:
    outcome: str
    owed: bool  # the thread was left queued: answers already wait for the next round


def _owes_filter() -> Q:
    """Threads that might be owed a run: the one test before planning and after releasing."""
    return (
        Q(status__in=Thread.ACTIVE)
        | Q(retry_requested=True)
        | ~Q(action="")
        | Q(status=Thread.Status.INTERRUPTED, items__status=ReviewItem.Status.ANSWERED)
    )


def _owed(thread_id: str) -> bool:
    return Thread.objects.filter(_owes_filter(), pk=thread_id).exists()


def _advance_once(thread_id: str, task_id: str, held: locks.HeldMutex) -> _Round | None:
    """One plan → run → record round; None when nothing is owed."""
    thread = Thread.objects.filter(_owes_filter(), pk=thread_id).first()
    if thread is None:
        return None
    try:
        graph = registry.graph_get(thread.graph)
        snapshot = graph.get_state(thread.langgraph_config)
    except Exception as exc:
        if transient(exc):
            raise
        failed = _fail_now(thread_id, exc, unregistered=isinstance(exc, registry.UnknownGraph))
        return _Round(failed, owed=False) if failed else None

    # Phase 1: plan, in a short transaction.
    with transaction.atomic():
        thread = Thread.objects.select_for_update().get(pk=thread_id)
        answered = list(
            thread.items.filter(status=ReviewItem.Status.ANSWERED).select_related("answered_by")
        )
        plan = _plan(thread, graph, snapshot, answered)
        if plan is None:
            return None
        if plan.kind == "record":
            owed = _record(thread, graph, snapshot, plan.pause, held)
            return _Round("record", owed)
        thread.attempts += 1
        if thread.attempts > settings.REVIEWDESK_MAX_ATTEMPTS:
            _fail(
                thread,
                error=f"Gave up after {thread.attempts - 1} attempts: each run stopped without "
                "recording an outcome (the worker was killed, ran out of memory, or lost the "
                "database). Retry it once the cause is fixed.",
            )
            return _Round("gave up", owed=False)
        now = timezone.now()
        if thread.attempts > 1:  # the previous run never recorded an outcome: its worker died
            thread.runs.filter(finished_at=None).update(finished_at=now, outcome=Run.Outcome.LOST)
        thread.status = Thread.Status.RUNNING
        thread.worker = worker_name()
        thread.run_started_at = now
        thread.save(update_fields=["attempts", "status", "worker", "run_started_at", "updated_at"])
        run = Run.objects.create(
            thread=thread,
            kind=plan.kind,
            task_id=task_id,
            worker=thread.worker,
            items=",".join(str(i.pk) for i in plan.answers),
            started_at=now,
        )
        events.thread_changed_on_commit(thread.pk)

    # Phase 2: run, with no transaction and (on a pooled database) no connection held.
    _release_db_connection()
    config = _run_config(thread, plan, task_id)
    error: BaseException | None = None
    trace = ""
    try:
        _run(thread, graph, plan, config)
    except _RunsAsync:
        log.info("thread %s: graph %s has async-only parts; runs async", thread_id, thread.graph)
        Run.objects.filter(pk=run.pk).update(
            finished_at=timezone.now(),
            outcome=Run.Outcome.QUEUED,
            error="The graph has async-only parts: planned again, to run through ainvoke.",
        )
        return _Round("switched to async", owed=True)
    except Exception as exc:
        if transient(exc):
            raise  # the database blinked: the thread stays owed, the reconciler re-runs it
        log.exception("thread %s failed", thread_id)
        error, trace = exc, tb.format_exc()

    # Phase 3: record the outcome, in a short transaction.
    try:
        after = None if error else graph.get_state(thread.langgraph_config)
        pause = None if after is None else _pause_after_return(graph, after)
        with transaction.atomic():
            thread = Thread.objects.select_for_update().get(pk=thread_id)
            _mark_applied(thread, plan.answers)
            if plan.kind in ACTIONS:
                _action_done(thread, plan)
            if thread.status == Thread.Status.CANCELLED:
                # Cancelled by staff while the graph ran: the run's end changes nothing more.
                _finish(run, thread)
                return _Round("cancelled", owed=False)
            if error is not None:
                _fail(thread, error=f"{type(error).__name__}: {error}", trace=trace)
                _finish(run, thread)
                return _Round("failed", owed=False)
            assert after is not None
            owed = _record(thread, graph, after, pause, held)
            if plan.kind in ACTIONS:
                _link_repeats(thread, plan)
            _finish(run, thread)
    except Exception as exc:
        if transient(exc):
            raise  # the database is unreachable: nothing can be recorded; the reconciler retries
        # The run ended but its outcome cannot be stored as it is (a value the database
        # refuses, a state the checkpointer cannot read back): say so now, with the real error.
        log.exception("thread %s: recording the outcome failed", thread_id)
        with transaction.atomic():
            thread = Thread.objects.select_for_update().get(pk=thread_id)
            _mark_applied(thread, plan.answers)
            if plan.kind in ACTIONS:
                _action_done(thread, plan)
            _fail(
                thread,
                error=f"The run ended, but its outcome could not be recorded: "
                f"{type(exc).__name__}: {exc}",
                trace=tb.format_exc(),
            )
            _finish(run, thread)
        return _Round("failed", owed=False)
    return _Round(plan.kind, owed)


def _action_done(thread: Thread, plan: Plan) -> None:
    """The staff action this run carried out is done (only action runs: never the hot path).

    An action queued while this one ran has another token and stays owed.
    """
    data = plan.payload or {}
    if (thread.action_data or {}).get("token") == data.get("token"):
        thread.action, thread.action_data = "", None
        Thread.objects.filter(pk=thread.pk).update(action="", action_data=None)


def _link_repeats(thread: Thread, plan: Plan) -> None:
    """Link the questions a replay or state edit asked again to the items they repeat."""
    repeats = (plan.payload or {}).get("repeats") or {}
    if repeats:
        fresh = thread.items.filter(
            status=ReviewItem.Status.PENDING, repeats=None, node__in=list(repeats)
        ).exclude(pk__in=list(repeats.values()))
        for item in fresh:
            item.repeats_id = repeats[item.node]
            item.save(update_fields=["repeats", "updated_at"])


def _finish(run: Run, thread: Thread) -> None:
    """Close the run's record with the status it left the thread in."""
    outcome = thread.status if thread.status in Run.Outcome.values else Run.Outcome.INTERRUPTED
    Run.objects.filter(pk=run.pk).update(
        finished_at=timezone.now(),
        outcome=outcome,
        error=thread.error[:2000] if outcome == "failed" else "",
    )


def _fail_now(thread_id: str, exc: Exception, *, unregistered: bool) -> str | None:
    """The graph or its state cannot be loaded at all: fail the thread with the reason."""
    with transaction.atomic():
        thread = Thread.objects.select_for_update().get(pk=thread_id)
        if thread.status not in (*Thread.ACTIVE, Thread.Status.INTERRUPTED):
            return None
        if unregistered:
            _fail(thread, error=f"The graph {thread.graph!r} is no longer registered.")
        else:
            log.exception("thread %s: its state cannot be read", thread_id)
            _fail(
                thread,
                error=f"The thread's state cannot be read: {type(exc).__name__}: {exc}",
                trace="".join(tb.format_exception(exc)),
            )
    return "failed"


def transient(exc: BaseException) -> bool:
    """A database or checkpointer that is briefly unreachable, not a fault of the thread."""
    import sqlite3

    import psycopg
    import psycopg_pool

    if isinstance(exc, OperationalError | InterfaceError | psycopg_pool.PoolTimeout):
        return True
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    return isinstance(exc, sqlite3.OperationalError) and any(
        word in str(exc) for word in ("locked", "busy", "disk I/O")
    )


def _release_db_connection() -> None:
    """Give a pooled connection back while the graph runs (a slow step must not pin one)."""
    pooled = connection.settings_dict.get("OPTIONS", {}).get("pool")
    if pooled and connection.vendor == "postgresql" and not connection.in_atomic_block:
        connection.close()


# --- plan ------------------------------------------------------------------------------------


def _plan(
    thread: Thread, graph: Pregel, snapshot: StateSnapshot, answered: list[ReviewItem]
) -> Plan | None:
    """What this thread is still owed, read from the desk's rows and the checkpointer."""
    if thread.status == Thread.Status.CANCELLED:
        return None
    if thread.action in ACTIONS:
        # Staff asked for it (services/history.py), whatever the thread was doing before.
        return Plan(thread.action, payload=thread.action_data or {})
    if thread.status == Thread.Status.COMPLETED:
        return None
    if thread.status == Thread.Status.FAILED and not thread.retry_requested:
        return None
    if snapshot.created_at is None:
        # Never checkpointed: the first run (or one that died before its first checkpoint).
        # Never re-send the input otherwise: that would start over with new interrupt ids.
        return Plan("start", thread.input) if thread.status in Thread.ACTIVE else None
    if thread.retry_requested:
        return Plan("retry")
    pending = {i.id for i in snapshot.interrupts}
    ready = [
        i for i in answered if i.kind == ReviewItem.Kind.INTERRUPT and i.interrupt_id in pending
    ]
    if ready:
        # One map for every available answer: resuming one branch alone re-runs its siblings.
        return Plan("resume", Command(resume={i.interrupt_id: i.answer for i in ready}), ready)
    if pending or not snapshot.tasks:
        # Questions already asked (a dead worker never mirrored them), or the graph finished:
        # nothing to run, only to record. Re-running the paused node would repeat its work.
        return Plan("record")
    checkpoint_id = snapshot.config["configurable"]["checkpoint_id"]
    for item in answered:
        if item.kind != ReviewItem.Kind.BREAKPOINT:
            continue
        answer = item.answer if isinstance(item.answer, dict) else {}
        if item.interrupt_id == BREAKPOINT_PREFIX + checkpoint_id:
            return Plan("continue", answers=[item], state_update=answer.get("state_update"))
        if (snapshot.metadata or {}).get(BREAKPOINT_EDIT_KEY) == str(item.pk):
            return Plan("continue", answers=[item])  # its state edit is already stored
    pause = _detect_pause(graph, snapshot)
    if pause is not None:
        return Plan("record", pause=pause)
    # A step that a dead worker started and never finished: continue from the checkpoint.
    return Plan("recover")


def _detect_pause(graph: Pregel, snapshot: StateSnapshot) -> Pause | None:
    """Is this checkpoint held by a static breakpoint (rather than a step that died)?

    LangGraph stops before ``interrupt_before`` nodes (after ``interrupt_after`` ones) when any
    channel changed since the last pause it passed, and passes it on the next resume. Reading
    the same condition here keeps recovery from silently passing a breakpoint nobody approved.
    """
    tup = graph.checkpointer.get_tuple(snapshot.config) if graph.checkpointer else None
    if tup is None:
        return None
    versions = tup.checkpoint["channel_versions"]
    seen = tup.checkpoint["versions_seen"].get("__interrupt__", {})
    if not versions:
        return None
    null = type(next(iter(versions.values())))()
    if not any(version > seen.get(channel, null) for channel, version in versions.items()):
        return None
    checkpoint_id = snapshot.config["configurable"]["checkpoint_id"]
    before, after = graph.interrupt_before_nodes, graph.interrupt_after_nodes
    upcoming = [task.name for task in snapshot.tasks]
    hit = upcoming if before == "*" else [name for name in upcoming if name in before]
    if hit:
        return Pause(checkpoint_id, "before", tuple(hit))
    if after and snapshot.parent_config:
        ran = [task.name for task in graph.get_state(snapshot.parent_config).tasks]
        hit = ran if after == "*" else [name for name in ran if name in after]
        if hit:
            return Pause(checkpoint_id, "after", tuple(hit))
    return None


def _pause_after_return(graph: Pregel, snapshot: StateSnapshot) -> Pause | None:
    """A run that returned with work left and no question pending was held by a breakpoint."""
    if not snapshot.tasks or snapshot.interrupts:
        return None
    found = _detect_pause(graph, snapshot)
    if found is not None:
        return found
    # A breakpoint we cannot place (one inside a subgraph, say): still a pause, never a failure.
    checkpoint_id = snapshot.config["configurable"]["checkpoint_id"]
    return Pause(checkpoint_id, "at", tuple(snapshot.next))


# --- run ---------------------------------------------------------------------------------------


def _run_config(thread: Thread, plan: Plan, task_id: str) -> dict[str, Any]:
    # Primitive metadata is stamped on every checkpoint: each step says who caused it.
    who = sorted({i.answered_by.get_username() for i in plan.answers if i.answered_by})
    metadata = {
        "reviewdesk_run": plan.kind,
        "reviewdesk_task": task_id,
        "reviewdesk_items": ",".join(str(i.pk) for i in plan.answers),
        "reviewdesk_answered_by": ",".join(who),
    }
    if plan.kind in ACTIONS:
        metadata["reviewdesk_actor"] = str(plan.payload.get("by", ""))
        metadata[ACTION_TOKEN_KEY] = str(plan.payload.get("token", ""))
    return {**thread.langgraph_config, "metadata": metadata}


def _run(thread: Thread, graph: Pregel, plan: Plan, config: dict[str, Any]) -> None:
    if plan.kind == "retry":
        _clear_failed_step(graph, config)
    if plan.kind == "continue" and plan.state_update is not None:
        [item] = plan.answers
        stamped = {**config, "metadata": {**config["metadata"], BREAKPOINT_EDIT_KEY: str(item.pk)}}
        graph.update_state(stamped, plan.state_update)
    if plan.kind in ACTIONS:
        config = _action_config(graph, plan, config)
    # None continues from the latest checkpoint (and passes a breakpoint held there).
    payload = plan.payload if plan.kind in ("start", "resume") else None
    if registry.runs_async(thread.graph):
        agraph = registry.graph_get(thread.graph, asynchronous=True)
        aio.run(agraph.ainvoke(payload, config, durability="sync"))
        return
    try:
        graph.invoke(payload, config, durability="sync")
    except Exception as exc:
        if _is_async_only(exc) and registry.learn_runs_async(thread.graph):
            raise _RunsAsync from exc
        raise


def _action_config(graph: Pregel, plan: Plan, config: dict[str, Any]) -> dict[str, Any]:
    """Prepare a staff action's run; the config to invoke with (None as the input).

    replay: invoking from a past checkpoint forks the thread there; the questions pending at
    it fire again with new interrupt ids (LangGraph replays, it never re-uses their answers).
    edit: ``update_state`` writes a new checkpoint, then the run continues from it.
    If the latest checkpoint already carries this action's token, a previous round did that
    much before its worker died: continue from there instead of doing it twice.
    """
    data = plan.payload
    latest = graph.get_state(config)
    if (latest.metadata or {}).get(ACTION_TOKEN_KEY) == data.get("token"):
        return config
    if plan.kind == "replay":
        return {
            **config,
            "configurable": {**config["configurable"], "checkpoint_id": data["checkpoint_id"]},
        }
    graph.update_state(config, data["values"], as_node=data.get("as_node") or None)
    return config


def _is_async_only(exc: BaseException) -> bool:
    """The errors LangChain and LangGraph raise when sync code reaches an async-only part."""
    markers = (
        "No synchronous function provided",
        "does not support sync invocation",
        "Cannot invoke a coroutine function synchronously",
    )
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(marker in str(current) for marker in markers):
            return True
        current = current.__cause__ or current.__context__
    return False


def _clear_failed_step(graph: Pregel, config: dict[str, Any]) -> None:
    """Drop the failed step's stored writes so its node asks again instead of replaying.

    A node that raised after interrupt() returned keeps that answer and replays it forever; a
    no-op state update on the step's checkpoint discards it and the question comes back with a
    new id. A failure without a stored answer simply re-runs.
    """
    snapshot = graph.get_state(config)
    if not _has_stored_answer(graph, snapshot):
        return
    try:
        graph.update_state(config, None)
    except InvalidUpdateError:  # the step had parallel nodes: name them all
        parent = graph.get_state(snapshot.parent_config)
        graph.bulk_update_state(config, [[StateUpdate(None, t.name) for t in parent.tasks]])


def _has_stored_answer(graph: Pregel, snapshot: StateSnapshot) -> bool:
    tup = graph.checkpointer.get_tuple(snapshot.config)
    return bool(tup and any(w[1] == "__resume__" for w in tup.pending_writes or []))


# --- record ------------------------------------------------------------------------------------


def _answer_was_recorded(graph: Pregel, thread: Thread, interrupt_id: str) -> bool:
    """Did some earlier run deliver an answer to this interrupt (read from raw writes)?"""
    for tup in graph.checkpointer.list(thread.langgraph_config, limit=50):
        writes = tup.pending_writes or []
        asked_by = {
            task
            for task, channel, value in writes
            if channel == "__interrupt__"
            and any(getattr(i, "id", None) == interrupt_id for i in value)
        }
        if any(task in asked_by and channel == "__resume__" for task, channel, _ in writes):
            return True
    return False


def _mark_applied(thread: Thread, items: list[ReviewItem]) -> None:
    """The answers this run delivered: applied (answered items change only under the mutex)."""
    if not items:
        return
    now = timezone.now()
    ReviewItem.objects.filter(
        pk__in=[i.pk for i in items], status=ReviewItem.Status.ANSWERED
    ).update(status=ReviewItem.Status.APPLIED, applied_at=now, updated_at=now)
    AuditEvent.objects.bulk_create(
        audit_row("item_applied", actor_label="worker", thread=thread, item=item) for item in items
    )
    for item in items:
        item.status, item.applied_at = ReviewItem.Status.APPLIED, now
        events.item_changed_on_commit(item.pk, queue=False)  # was not pending, still is not


def _fail(thread: Thread, *, error: str, trace: str = "") -> None:
    """Mark the thread failed, close its open items (a retry asks again) and tell everyone."""
    thread.status = Thread.Status.FAILED
    thread.error = error
    thread.traceback = trace
    thread.attempts = 0
    thread.retry_requested = False
    thread.worker = ""
    thread.save()
    for item in thread.items.filter(status__in=ReviewItem.OPEN):
        item.move_to(ReviewItem.Status.SUPERSEDED)
        item.save(update_fields=["status", "updated_at"])
        audit("item_superseded", actor_label="worker", thread=thread, item=item, reason="failed")
        events.item_changed_on_commit(item.pk)
    audit("thread_failed", actor_label="worker", thread=thread, error=error)
    events.thread_changed_on_commit(thread.pk)


def _record(
    thread: Thread,
    graph: Pregel,
    snapshot: StateSnapshot,
    pause: Pause | None,
    held: locks.HeldMutex,
) -> bool:
    """Make the open items match the checkpointer's pending questions, then set the status.

    Called inside a transaction holding the thread's row lock. Returns whether answers already
    wait for questions still open (the thread is left queued for the next round).
    """
    pending = {i.id: i for i in snapshot.interrupts}
    nodes = {i.id: t.name for t in snapshot.tasks for i in t.interrupts}
    asked: dict[str, tuple[Any, Any, str, str]] = {
        interrupt_id: (
            to_storable(interrupt.value),
            to_storable(interrupt.response_schema) if interrupt.response_schema else None,
            nodes.get(interrupt_id, ""),
            ReviewItem.Kind.INTERRUPT,
        )
        for interrupt_id, interrupt in pending.items()
    }
    if pause is not None and not pending:
        asked[pause.key] = (
            pause.value,
            BREAKPOINT_SCHEMA,
            ",".join(pause.nodes),
            ReviewItem.Kind.BREAKPOINT,
        )
    # Open items, and closed ones the checkpointer asks again: never the thread's whole past.
    items = {
        item.interrupt_id: item
        for item in thread.items.select_for_update().filter(
            Q(status__in=ReviewItem.OPEN) | Q(interrupt_id__in=list(asked))
        )
    }
    now = timezone.now()
    audits: list[AuditEvent] = []

    def close(item: ReviewItem, status: str, **data: Any) -> None:
        was_pending = item.status == ReviewItem.Status.PENDING
        item.move_to(status)
        action = "item_applied" if status == ReviewItem.Status.APPLIED else "item_superseded"
        if status == ReviewItem.Status.APPLIED:
            item.applied_at = now
        item.save(update_fields=["status", "applied_at", "updated_at"])
        audits.append(audit_row(action, actor_label="worker", thread=thread, item=item, **data))
        events.item_changed_on_commit(item.pk, queue=was_pending)

    for interrupt_id, item in items.items():
        if interrupt_id in asked or item.status not in ReviewItem.OPEN:
            continue
        if item.status == ReviewItem.Status.PENDING:
            close(item, ReviewItem.Status.SUPERSEDED)
        # An answered question that is gone: consumed by a run that died before recording it
        # (rare; only then is the checkpointer's history searched), else withdrawn unanswered.
        # A breakpoint's pause that moved on was passed by the continue its answer asked for.
        elif item.kind == ReviewItem.Kind.BREAKPOINT or _answer_was_recorded(
            graph, thread, interrupt_id
        ):
            close(item, ReviewItem.Status.APPLIED, recovered=True)
        else:
            close(item, ReviewItem.Status.SUPERSEDED)

    for interrupt_id, (value, schema, node, kind) in asked.items():
        item = items.get(interrupt_id)
        if item is None:
            item = ReviewItem.objects.create(
                thread=thread,
                interrupt_id=interrupt_id,
                kind=kind,
                queue_id=thread.queue_id,
                value=value,
                response_schema=schema,
                node=node,
            )
            items[interrupt_id] = item
            audits.append(
                audit_row(
                    "item_created", actor_label="worker", thread=thread, item=item, value=value
                )
            )
        elif item.status in ReviewItem.OPEN:
            if item.value == value and item.response_schema == schema:
                continue
            # Same id, new payload: the node built a different question on re-run.
            item.value, item.response_schema = value, schema
            item.save(update_fields=["value", "response_schema", "updated_at"])
            audits.append(
                audit_row(
                    "item_refreshed", actor_label="worker", thread=thread, item=item, value=value
                )
            )
        else:
            # The checkpointer asks this id again: it must have exactly one open item.
            item.move_to(ReviewItem.Status.PENDING)
            item.value, item.response_schema = value, schema
            item.answer, item.answered_by, item.answered_at = None, None, None
            item.save()
            audits.append(
                audit_row(
                    "item_reopened", actor_label="worker", thread=thread, item=item, value=value
                )
            )
        events.item_changed_on_commit(item.pk)

    # Finished means no tasks left, not merely next == (): a crash can leave a written node.
    owed = False
    if not snapshot.tasks:
        thread.status = Thread.Status.COMPLETED
        thread.finished_at = now
        held.discard = True
        audits.append(audit_row("thread_completed", actor_label="worker", thread=thread))
    elif any(i.status == ReviewItem.Status.ANSWERED for i in items.values()):
        # Answers that arrived during the run, for questions still open: the next round's.
        thread.status = Thread.Status.QUEUED
        owed = True
    else:
        thread.status = Thread.Status.INTERRUPTED
    AuditEvent.objects.bulk_create(audits)
    thread.attempts = 0
    thread.retry_requested = False
    thread.worker = ""
    thread.save(
        update_fields=[
            "status", "finished_at", "attempts", "retry_requested", "worker", "updated_at"
        ]
    )  # fmt: skip
    events.thread_changed_on_commit(thread.pk)
    return owed
