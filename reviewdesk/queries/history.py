"""A thread's whole history for admins: the graph's checkpoints and the desk's records, merged.

One query answers the thread page, its JSON export and ``manage.py threadhistory`` alike, so
what a script reads is exactly what an admin sees. LangGraph keeps what each step wrote
(``get_state_history``); the desk keeps who decided what, when and how (the audit log and the
review items). Neither alone says "rita's answer made ``ask_colour`` write this at 10:02".
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jsonpatch
from django.contrib.auth import BACKEND_SESSION_KEY
from django.db.models import Count, Q, QuerySet, TextField
from django.db.models.functions import Cast

from reviewdesk.engine import registry
from reviewdesk.models import AuditEvent, ReviewItem, Thread
from reviewdesk.payloads import to_json
from reviewdesk.queries.threads import _message

if TYPE_CHECKING:
    from django.http import HttpRequest
    from langgraph.types import StateSnapshot

log = logging.getLogger(__name__)

# Audit actions and the timeline kind each becomes (issue 8's contract names the kinds).
KINDS = {
    "thread_started": "started",
    "item_created": "asked",
    "item_reopened": "asked",
    "item_refreshed": "refreshed",
    "item_answered": "answered",
    "item_applied": "applied",
    "item_superseded": "superseded",
    "thread_replayed": "replayed",
    "thread_state_edited": "state_edited",
    "thread_cancelled": "cancelled",
    "thread_retried": "retried",
    "thread_completed": "completed",
    "thread_failed": "failed",
}


def iso(moment: datetime | str | None) -> str:
    """ISO 8601 in UTC, whatever the source (a database datetime, a checkpoint's string)."""
    if moment is None:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(UTC).isoformat()


def checkpoint_id(snapshot: StateSnapshot) -> str:
    return str(snapshot.config["configurable"]["checkpoint_id"])


def _parent_id(snapshot: StateSnapshot) -> str:
    parent = snapshot.parent_config
    return str(parent["configurable"]["checkpoint_id"]) if parent else ""


def checkpoints(thread: Thread) -> list[StateSnapshot]:
    """Every checkpoint of the thread, oldest first ([] when its graph or store is unreadable)."""
    try:
        graph = registry.graph_get(thread.graph)
        return list(reversed(list(graph.get_state_history(thread.langgraph_config))))
    except Exception as exc:
        log.warning("cannot read the history of thread %s: %s: %s", thread.pk, type(exc), exc)
        return []


def _actor(snapshot: StateSnapshot, thread: Thread) -> str:
    """Who caused a checkpoint, from the metadata the engine stamps on each run's steps."""
    meta = snapshot.metadata or {}
    who = meta.get("reviewdesk_actor") or meta.get("reviewdesk_answered_by")
    if who:
        return str(who)
    if meta.get("reviewdesk_run") == "start" or meta.get("source") == "input":
        return thread.started_by.get_username() if thread.started_by else "system"
    return "worker"


def _steps(thread: Thread, history: list[StateSnapshot]) -> list[dict[str, Any]]:
    """One entry per checkpoint: the nodes whose writes made it, what they wrote, who caused it."""
    by_id = {checkpoint_id(s): s for s in history}
    entries = []
    for snap in history:
        meta = snap.metadata or {}
        parent = by_id.get(_parent_id(snap))
        source = str(meta.get("source", ""))
        # Only a loop step was written by the nodes its parent ran; a fork or an update copies
        # or edits the state, and the parent's task results belong to another branch.
        tasks = parent.tasks if parent and source == "loop" else ()
        ran = [t for t in tasks if t.result is not None]
        if ran:
            node = ",".join(t.name for t in ran)
            writes = {t.name: to_json(t.result) for t in ran}
        else:  # the input arriving, a state edit (update_state), a replay's fork: no node ran
            labels = {"input": "(input)", "update": "(state edit)", "fork": "(replay)"}
            node, writes = labels.get(source, source or "(checkpoint)"), {}
        entries.append(
            {
                "at": iso(snap.created_at),
                "kind": "step",
                "node": node,
                "checkpoint_id": checkpoint_id(snap),
                "parent_checkpoint_id": _parent_id(snap),
                "step": meta.get("step"),
                "source": source,
                "writes": writes,
                "by": _actor(snap, thread),
                "run": str(meta.get("reviewdesk_run", "")),
                "next": [t.name for t in snap.tasks],
            }
        )
    return entries


def _asked_at(history: list[StateSnapshot]) -> dict[str, str]:
    """Interrupt id → the checkpoint at which that question was pending."""
    found: dict[str, str] = {}
    for snap in history:
        for task in snap.tasks:
            for interrupt in task.interrupts:
                found.setdefault(interrupt.id, checkpoint_id(snap))
    return found


def _desk_entry(
    event: AuditEvent, items: dict[int, ReviewItem], asked_at: dict[str, str]
) -> dict[str, Any]:
    kind = KINDS.get(event.action, event.action.removeprefix("item_").removeprefix("thread_"))
    data = event.data if isinstance(event.data, dict) else {}
    by = event.actor.get_username() if event.actor else event.actor_label
    entry: dict[str, Any] = {"at": iso(event.created_at), "kind": kind, "by": by}
    item = items.get(event.item_id) if event.item_id else None
    if event.item_id:
        entry["item"] = event.item_id
    if kind == "asked" and item is not None:
        interrupt_id = item.interrupt_id
        entry["interrupt_id"] = interrupt_id
        # A breakpoint's item names its checkpoint in its id; an interrupt's is looked up.
        breakpoint = interrupt_id.removeprefix("breakpoint:") if item.kind == "breakpoint" else ""
        entry["checkpoint_id"] = asked_at.get(interrupt_id) or breakpoint
        entry["value"] = data.get("value", item.value)
        entry["node"] = item.node
        entry["repeats"] = item.repeats_id
    elif kind == "answered":
        entry["answer"] = data.get("answer")
        entry["via"] = data.get("via", "")
        entry["payload_hash"] = data.get("payload_hash", "")
        if item is not None and entry["payload_hash"]:
            from reviewdesk.services.items import payload_hash

            entry["payload_changed"] = payload_hash(item.value) != entry["payload_hash"]
    elif kind == "failed":
        entry["error"] = data.get("error", "")
    elif kind == "started":
        entry["input"] = data.get("input")
    else:
        entry.update({k: v for k, v in data.items() if k not in entry})
    return entry


def thread_timeline(
    thread: Thread, *, history: list[StateSnapshot] | None = None
) -> list[dict[str, Any]]:
    """Every step and every decision of the thread, oldest first (the issue 8 contract)."""
    history = checkpoints(thread) if history is None else history
    items = {i.pk: i for i in thread.items.all()}
    asked_at = _asked_at(history)
    events = (
        AuditEvent.objects.filter(thread=thread)
        .select_related("actor")
        .order_by("created_at", "id")
    )
    entries = _steps(thread, history) + [_desk_entry(e, items, asked_at) for e in events]
    # Stable: at equal instants steps come before the desk's records of them.
    return sorted(entries, key=lambda e: e["at"])


def thread_history(thread: Thread) -> dict[str, Any]:
    """What ``threadhistory`` prints and the page's export serves: the thread and its timeline."""
    return {"thread": str(thread.pk), "status": thread.status, "timeline": thread_timeline(thread)}


def thread_export(thread: Thread) -> dict[str, Any]:
    """One thread's full history as JSON: the timeline, every checkpoint's state, its items."""
    history = checkpoints(thread)
    return {
        "thread": str(thread.pk),
        "graph": thread.graph,
        "status": thread.status,
        "input": thread.input,
        "started_by": thread.started_by.get_username() if thread.started_by else None,
        "created_at": iso(thread.created_at),
        "error": thread.error,
        "timeline": thread_timeline(thread, history=history),
        "states": [
            {
                "checkpoint_id": checkpoint_id(s),
                "parent_checkpoint_id": _parent_id(s),
                "at": iso(s.created_at),
                "values": to_json(s.values),
                "metadata": to_json(s.metadata),
            }
            for s in history
        ],
        "items": [
            {
                "item": i.pk,
                "interrupt_id": i.interrupt_id,
                "status": i.status,
                "value": i.value,
                "answer": i.answer,
                "by": i.answered_by.get_username() if i.answered_by else None,
                "answered_at": iso(i.answered_at),
                "via": i.answered_via,
                "payload_hash": i.payload_hash,
                "repeats": i.repeats_id,
            }
            for i in thread.items.select_related("answered_by").order_by("created_at", "id")
        ],
    }


def thread_state_at(thread: Thread, checkpoint: str) -> dict[str, Any] | None:
    """The state at a checkpoint, and a JSON Patch (RFC 6902) from the one before it."""
    try:
        graph = registry.graph_get(thread.graph)
        config = {"configurable": {**thread.langgraph_config["configurable"]}}
        config["configurable"]["checkpoint_id"] = checkpoint
        snap = graph.get_state(config)
        if snap.created_at is None:
            return None
        before = graph.get_state(snap.parent_config).values if snap.parent_config else {}
    except Exception as exc:
        log.warning("cannot read checkpoint %s of thread %s: %s", checkpoint, thread.pk, exc)
        return None
    values, previous = to_json(snap.values), to_json(before)
    messages = values.get("messages", []) if isinstance(snap.values, dict) else []
    raw_messages = snap.values.get("messages", []) if isinstance(snap.values, dict) else []
    return {
        "checkpoint_id": checkpoint_id(snap),
        "parent_checkpoint_id": _parent_id(snap),
        "at": iso(snap.created_at),
        "values": values,
        "previous": previous,
        "diff": jsonpatch.make_patch(previous, values).patch,
        "next": [str(n) for n in snap.next],
        "metadata": to_json(snap.metadata),
        "messages": [m for m in map(_message, raw_messages) if m] if messages else [],
    }


def login_method(request: HttpRequest) -> str:
    """How the person deciding is logged in: their session (hashed), backend and login time.

    Stored with each decision, so "who decided" is tied to one authenticated session rather
    than to a name typed into a form.
    """
    session_key = getattr(request.session, "session_key", None) or ""
    digest = hashlib.sha256(session_key.encode()).hexdigest()[:12] if session_key else "none"
    backend = str(request.session.get(BACKEND_SESSION_KEY, "")).rsplit(".", 1)[-1] or "unknown"
    user = request.user
    since = iso(user.last_login) if getattr(user, "last_login", None) else "unknown"
    return f"web session {digest} via {backend}, logged in {since}"


# --- the staff thread list ------------------------------------------------------------------------


SORTS = {
    "newest": ("-created_at", "-id"),
    "oldest": ("created_at", "id"),
}
PAGE_SIZE = 50


@dataclasses.dataclass
class ThreadFilters:
    """The thread list's filters, from a query string (every field optional)."""

    graph: str = ""
    status: str = ""
    started_by: str = ""
    since: str = ""  # YYYY-MM-DD, inclusive
    until: str = ""  # YYYY-MM-DD, inclusive
    text: str = ""
    sort: str = "newest"

    @classmethod
    def from_query(cls, query: Any) -> ThreadFilters:
        found = cls(
            **{f.name: str(query.get(f.name, "") or "")[:200] for f in dataclasses.fields(cls)}
        )
        if found.sort not in SORTS:
            found.sort = "newest"
        if found.status not in Thread.Status.values:
            found.status = ""
        for name in ("since", "until"):
            try:
                day_start(getattr(found, name))
            except ValueError:
                setattr(found, name, "")
        return found

    def query(self, **extra: str) -> str:
        from urllib.parse import urlencode

        pairs = {**{k: v for k, v in dataclasses.asdict(self).items() if v}, **extra}
        return urlencode({k: v for k, v in pairs.items() if v})


def _filtered(filters: ThreadFilters, *, status: bool = True) -> QuerySet[Thread]:
    threads = Thread.objects.all()
    if filters.graph:
        threads = threads.filter(graph=filters.graph)
    if status and filters.status:
        threads = threads.filter(status=filters.status)
    if filters.started_by:
        threads = threads.filter(started_by__username=filters.started_by)
    if filters.since:
        start = day_start(filters.since)
        threads = threads.filter(created_at__gte=start)
    if filters.until:
        end = day_start(filters.until)
        threads = threads.filter(created_at__lt=end + _DAY)
    if filters.text:
        # Input, error, and what the thread asked and was answered: the desk's copies of its
        # state that a database can search (the checkpointer's blobs it cannot).
        threads = threads.annotate(_input=Cast("input", TextField())).filter(
            Q(_input__icontains=filters.text)
            | Q(error__icontains=filters.text)
            | Q(pk__in=ReviewItem.objects.annotate(
                _value=Cast("value", TextField()), _answer=Cast("answer", TextField())
            ).filter(Q(_value__icontains=filters.text) | Q(_answer__icontains=filters.text))
            .values("thread_id"))
        )  # fmt: skip
    return threads


_DAY = timedelta(days=1)


def day_start(text: str) -> datetime:
    """A YYYY-MM-DD date as the UTC midnight it starts at (ValueError when it is not one)."""
    return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)


def _cursor(thread: Thread) -> str:
    raw = json.dumps([iso(thread.created_at), str(thread.pk)])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str] | None:
    try:
        at, pk = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(at), str(pk)
    except Exception:
        return None


def thread_list(
    filters: ThreadFilters, *, after: str = "", size: int = PAGE_SIZE
) -> tuple[list[Thread], str]:
    """One keyset page of threads and the cursor of the next page ("" on the last one).

    Keyset on (created_at, id), an index (models.Thread), so page 2000 costs what page 1 does.
    """
    threads = _filtered(filters).select_related("started_by")
    order = SORTS[filters.sort]
    position = _decode_cursor(after) if after else None
    if position is not None:
        at, pk = position
        # The plain bound on created_at lets PostgreSQL walk the index from the cursor on (an
        # OR alone makes it scan from the start); the OR then breaks ties on the id.
        if filters.sort == "newest":
            threads = threads.filter(
                Q(created_at__lt=at) | Q(created_at=at, id__lt=pk), created_at__lte=at
            )
        else:
            threads = threads.filter(
                Q(created_at__gt=at) | Q(created_at=at, id__gt=pk), created_at__gte=at
            )
    rows = list(threads.order_by(*order)[: size + 1])
    following = _cursor(rows[size - 1]) if len(rows) > size else ""
    return rows[:size], following


def thread_counts(filters: ThreadFilters) -> dict[str, int]:
    """Threads per status under every filter but the status one (for the status tabs)."""
    counts = dict.fromkeys(Thread.Status.values, 0)
    rows = _filtered(filters, status=False).order_by().values("status").annotate(n=Count("pk"))
    for row in rows:
        counts[row["status"]] = row["n"]
    return counts
