"""Ops figures: backlog per queue, threads, stuck threads, decisions, read from the database.

Whatever grows with the backlog comes from the trigger-kept tally (``reviewdesk/tally.py``), in
time that does not depend on how many items there are; everything else is an index range over a
recent window (the last hour or day of decisions), whose cost follows the desk's activity, not
its size. Every figure is the database's, so any number of web processes agree.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from reviewdesk import tally
from reviewdesk.models import Queue, QueueAlerting, ReviewItem, StuckThread, Thread

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

OPS_GROUP = "ops"
# Pending-age histogram bounds (seconds): a minute, 5 and 15 minutes, hours, a day, a week.
AGE_BUCKETS: tuple[int, ...] = (60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400)
WINDOW = timedelta(hours=24)
# Up to this many decisions (or claims) a day, percentiles and reviewers are exact (read from
# the day's rows by index); above it they come from the hour-keyed tally, which costs the same
# at any rate: percentiles are then estimated within their histogram bucket, as Prometheus's
# histogram_quantile() does, over whole hours.
EXACT_LIMIT = 10_000


def user_can_ops(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Staff, or a member of the "ops" group."""
    if not user.is_authenticated:
        return False
    return bool(user.is_staff or user.groups.filter(name=OPS_GROUP).exists())


def epoch_hour(moment: datetime) -> int:
    """Hours since the epoch, as the tally triggers compute it (whole seconds, floored)."""
    return int(moment.timestamp()) // 3600


@dataclass
class QueueFigures:
    queue: Queue
    items: dict[str, int] = field(default_factory=dict)  # by status
    claimed: int = 0
    overdue: int = 0
    overdue_after: int = 0
    oldest_pending_age_s: float | None = None
    age_histogram: list[tuple[str, int]] = field(default_factory=list)  # (label, count)
    age_cumulative: list[tuple[float, int]] = field(default_factory=list)  # (le, count ≤ le)
    created_per_hour: list[int] = field(default_factory=list)  # 24 values, oldest first
    decided_per_hour: list[int] = field(default_factory=list)
    hours: list[int] = field(default_factory=list)  # the epoch hours of those values
    decided_last_hour: int = 0
    decision_p50_s: float | None = None
    decision_p90_s: float | None = None
    claim_p50_s: float | None = None
    claim_p90_s: float | None = None
    reviewers: list[tuple[str, int]] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return self.items.get(ReviewItem.Status.PENDING, 0)

    def as_json(self) -> dict[str, Any]:
        """The keys `manage.py backlog --json` promises (a contract), plus nothing else."""
        age = self.oldest_pending_age_s
        return {
            "queue": self.queue.slug,
            "pending": self.pending,
            "claimed": self.claimed,
            "overdue": self.overdue,
            "oldest_pending_age_s": round(age, 3) if age is not None else None,
            "decided_last_hour": self.decided_last_hour,
        }


def age_label(seconds: float) -> str:
    """60 → "1m", 14400 → "4h", 604800 → "7d"."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def queue_figures(
    *, now: datetime | None = None, queues: list[Queue] | None = None, detail: bool = True
) -> list[QueueFigures]:
    """Every queue's backlog figures; `detail` adds the 24 h chart, percentiles and reviewers."""
    now = now or timezone.now()
    queues = list(Queue.objects.select_related("alerting")) if queues is None else queues
    now_hour = epoch_hour(now)
    first_hour = now_hour - 23
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    pending_hours: dict[int, dict[int, int]] = defaultdict(dict)
    hourly: dict[tuple[int, str], dict[int, int]] = defaultdict(dict)
    for queue_id, metric, label, _le, hour, n, _s in tally.sums(
        ("items", "pending", "created", "decided"), since_hour=first_hour
    ):
        if metric == "items":
            counts[queue_id][label] = n
        elif metric == "pending":
            pending_hours[queue_id][hour] = n
        else:
            hourly[(queue_id, metric)][hour] = n
    # The pending tally is read again without the hour filter: old items are its point.
    pending_hours.clear()
    for queue_id, _m, _l, _le, hour, n, _s in tally.sums(("pending",)):
        pending_hours[queue_id][hour] = n

    claim_filter = claim_q(now)
    out = []
    for queue in queues:
        figures = QueueFigures(queue=queue, items=dict(counts.get(queue.pk, {})))
        pending = ReviewItem.objects.filter(queue=queue, status=ReviewItem.Status.PENDING)
        hours = pending_hours.get(queue.pk, {})
        oldest = pending.order_by("created_at").values_list("created_at", flat=True).first()
        if oldest is not None:
            figures.oldest_pending_age_s = max(0.0, (now - oldest).total_seconds())
        total = figures.pending
        cumulative = []
        for bound in AGE_BUCKETS:
            newer = _pending_newer(pending, hours, now - timedelta(seconds=bound))
            cumulative.append((float(bound), newer))
        cumulative.append((math.inf, total))
        figures.age_cumulative = cumulative
        previous = 0
        labels = [f"≤{age_label(b)}" for b in AGE_BUCKETS] + [f">{age_label(AGE_BUCKETS[-1])}"]
        for label, (_bound, count) in zip(labels, cumulative, strict=True):
            figures.age_histogram.append((label, count - previous))
            previous = count
        figures.overdue_after = overdue_after(queue)
        figures.overdue = total - _pending_newer(
            pending, hours, now - timedelta(seconds=figures.overdue_after)
        )
        if claim_filter is not None:
            figures.claimed = pending.filter(claim_filter).count()
        figures.decided_last_hour = ReviewItem.objects.filter(
            queue=queue, answered_at__gt=now - timedelta(hours=1), answered_at__lte=now
        ).count()
        if detail:
            _add_detail(figures, now=now, first_hour=first_hour, hourly=hourly)
        out.append(figures)
    return out


def _pending_newer(pending: Any, hours: dict[int, int], cutoff: datetime) -> int:
    """Pending items created at or after `cutoff`: whole hours from the tally, the rest counted.

    Only the items created in `cutoff`'s own hour are counted row by row (an index range), so
    the cost follows how many items arrive in an hour, never the size of the backlog.
    """
    hour = epoch_hour(cutoff)
    whole = sum(n for h, n in hours.items() if h > hour)
    hour_end = datetime.fromtimestamp((hour + 1) * 3600, tz=cutoff.tzinfo or UTC)
    part = pending.filter(created_at__gte=cutoff, created_at__lt=hour_end).count()
    return whole + part


def overdue_after(queue: Queue) -> int:
    """Seconds a pending item of this queue may wait before it counts as overdue."""
    try:
        configured = queue.alerting.overdue_after
    except QueueAlerting.DoesNotExist:
        configured = None
    return int(configured or settings.REVIEWDESK_OVERDUE_AFTER)


def claim_q(now: datetime) -> Q | None:
    """Items under a live claim, by whatever claim fields the item model has (None: no claims).

    Claims arrive with the reviewer workbench: a ``claimed_by`` and, if leases expire, an
    expiry. Until then there is nothing claimed, and the figure says 0 rather than guessing.
    """
    names = {f.name for f in ReviewItem._meta.get_fields()}
    if "claimed_by" not in names:
        return None
    q = Q(claimed_by__isnull=False)
    for expiry in ("claim_expires_at", "claimed_until", "lease_expires_at", "claim_expires"):
        if expiry in names:
            q &= Q(**{f"{expiry}__gt": now})
    return q


def _add_detail(
    figures: QueueFigures,
    *,
    now: datetime,
    first_hour: int,
    hourly: dict[tuple[int, str], dict[int, int]],
) -> None:
    queue_id = figures.queue.pk
    figures.hours = list(range(first_hour, first_hour + 24))
    created = hourly.get((queue_id, "created"), {})
    decided = hourly.get((queue_id, "decided"), {})
    figures.created_per_hour = [created.get(h, 0) for h in figures.hours]
    figures.decided_per_hour = [decided.get(h, 0) for h in figures.hours]

    decided_today = sum(figures.decided_per_hour)
    if decided_today <= EXACT_LIMIT:
        recent = ReviewItem.objects.filter(
            queue_id=queue_id, answered_at__gt=now - WINDOW, answered_at__lte=now
        )
        figures.decision_p50_s, figures.decision_p90_s = _percentiles(
            "SELECT {took} AS took FROM reviewdesk_reviewitem i "
            "WHERE i.queue_id = %s AND i.answered_at > %s AND i.answered_at <= %s",
            ("i.answered_at", "i.created_at"),
            [queue_id, now - WINDOW, now],
        )
        figures.reviewers = [
            (row["answered_by__username"] or "(deleted user)", row["n"])
            for row in recent.values("answered_by__username")
            .annotate(n=Count("id"))
            .order_by("-n", "answered_by__username")[:10]
        ]
    else:
        figures.decision_p50_s, figures.decision_p90_s = _estimated(
            "decision_s", queue_id, first_hour
        )
        figures.reviewers = _reviewers_tallied(queue_id, first_hour)
    claims = _tallied_buckets("claim_s", queue_id, first_hour)
    if sum(claims.values()) <= EXACT_LIMIT:
        # First claims only: a claim event with no earlier claim of the same item.
        figures.claim_p50_s, figures.claim_p90_s = _percentiles(
            "SELECT {took} AS took FROM reviewdesk_auditevent a "
            "JOIN reviewdesk_reviewitem i ON i.id = a.item_id "
            "WHERE a.action = 'item_claimed' AND a.created_at > %s AND a.created_at <= %s "
            "AND i.queue_id = %s AND NOT EXISTS (SELECT 1 FROM reviewdesk_auditevent b "
            "WHERE b.item_id = a.item_id AND b.action = 'item_claimed' AND b.id < a.id)",
            ("a.created_at", "i.created_at"),
            [now - WINDOW, now, queue_id],
        )
    else:
        figures.claim_p50_s, figures.claim_p90_s = _estimated("claim_s", queue_id, first_hour)


def _tallied_buckets(metric: str, queue_id: int, first_hour: int) -> dict[str, int]:
    by_le: dict[str, int] = defaultdict(int)
    for q, _m, _label, le, hour, n, _s in tally.sums((metric,), since_hour=first_hour):
        if q == queue_id and hour is not None:
            by_le[le] += n
    return by_le


def _estimated(metric: str, queue_id: int, first_hour: int) -> tuple[float | None, float | None]:
    """p50 and p90 interpolated within the tally's histogram buckets of the last 24 hours."""
    by_le = _tallied_buckets(metric, queue_id, first_hour)
    total = sum(by_le.values())
    if not total:
        return None, None
    bounds = [*tally.DECISION_BUCKETS, math.inf]
    out = []
    for rank in (0.5, 0.9):
        target, running, lower = rank * total, 0, 0.0
        value = float(tally.DECISION_BUCKETS[-1])
        for bound in bounds:
            count = by_le.get("+Inf" if math.isinf(bound) else tally.le_label(bound), 0)
            if count and running + count >= target:
                value = (
                    lower
                    if math.isinf(bound)
                    else lower + (bound - lower) * ((target - running) / count)
                )
                break
            running += count
            lower = bound if not math.isinf(bound) else lower
        out.append(value)
    return out[0], out[1]


def _reviewers_tallied(queue_id: int, first_hour: int) -> list[tuple[str, int]]:
    from django.contrib.auth import get_user_model

    counts: dict[str, int] = defaultdict(int)
    for q, _m, label, _le, _hour, n, _s in tally.sums(("reviewer",), since_hour=first_hour):
        if q == queue_id:
            counts[label] += n
    names = dict(
        get_user_model()
        .objects.filter(pk__in=[int(k) for k in counts if k.isdigit()])
        .values_list("pk", "username")
    )
    rows = [(names.get(int(k), "(deleted user)") if k.isdigit() else "(no user)", n)
            for k, n in counts.items()]  # fmt: skip
    return sorted(rows, key=lambda row: (-row[1], row[0]))[:10]


def _percentiles(
    select: str, took: tuple[str, str], params: list[Any]
) -> tuple[float | None, float | None]:
    """Nearest-rank p50 and p90 of a duration, ranked and picked by the database in one query."""
    from django.db import connection

    later, earlier = took
    if connection.vendor == "postgresql":
        seconds = f"extract(epoch from ({later} - {earlier}))::float8"
    else:
        seconds = f"((julianday({later}) - julianday({earlier})) * 86400.0)"
    inner = select.format(took=seconds)
    # ceil(n/2) and ceil(9n/10) in integer arithmetic, the same on SQLite and PostgreSQL.
    sql = (
        "SELECT rn, n, took FROM (SELECT took, row_number() OVER (ORDER BY took) AS rn, "
        f"count(*) OVER () AS n FROM ({inner}) AS d) AS r "
        "WHERE rn = (n + 1) / 2 OR rn = (9 * n + 9) / 10"
    )
    params = [
        connection.ops.adapt_datetimefield_value(p) if isinstance(p, datetime) else p
        for p in params
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return None, None
    n = rows[0][1]
    by_rank = {rn: float(took) for rn, _n, took in rows}
    return by_rank[(n + 1) // 2], by_rank[(9 * n + 9) // 10]


def thread_counts() -> dict[str, int]:
    """Threads per status over every queue (all statuses present, zeros included)."""
    counts = dict.fromkeys(Thread.Status.values, 0)
    for _q, _m, label, _le, _h, n, _s in tally.sums(("threads",)):
        counts[label] = counts.get(label, 0) + n
    return counts


def thread_counts_by_queue() -> dict[int, dict[str, int]]:
    by_queue: dict[int, dict[str, int]] = defaultdict(dict)
    for queue_id, _m, label, _le, _h, n, _s in tally.sums(("threads",)):
        by_queue[queue_id][label] = by_queue[queue_id].get(label, 0) + n
    return by_queue


def threads_failed(limit: int = 20) -> list[Thread]:
    """The most recently failed threads, with their error (index on status, updated_at)."""
    return list(
        Thread.objects.filter(status=Thread.Status.FAILED)
        .order_by("-updated_at")
        .only("id", "graph", "error", "updated_at", "queue_id")[:limit]
    )


def threads_running_long(*, now: datetime | None = None, limit: int = 20) -> list[Thread]:
    """Threads whose current run started longer ago than REVIEWDESK_LONG_RUN seconds."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.REVIEWDESK_LONG_RUN)
    return list(
        Thread.objects.filter(status=Thread.Status.RUNNING, run_started_at__lt=cutoff)
        .order_by("run_started_at")
        .only("id", "graph", "worker", "run_started_at")[:limit]
    )


def stuck_counts() -> dict[str, int]:
    """Stuck threads the last sweep found, per kind (every kind present)."""
    counts = dict.fromkeys(StuckThread.Kind.values, 0)
    for row in StuckThread.objects.values("kind").annotate(n=Count("id")):
        counts[row["kind"]] = row["n"]
    return counts


def stuck_threads(limit: int = 50) -> list[StuckThread]:
    return list(StuckThread.objects.select_related("thread").order_by("found_at", "id")[:limit])


@dataclass
class Histogram:
    """A cumulative histogram as Prometheus wants it."""

    buckets: list[tuple[str, int]]  # (le, cumulative count), ending with "+Inf"
    total: float


def histograms(metric: str, bounds: tuple[float, ...]) -> dict[tuple[int | None, str], Histogram]:
    """Per (queue_id, label) histograms of a duration metric of the tally."""
    raw: dict[tuple[int | None, str], dict[str, int]] = defaultdict(dict)
    sums: dict[tuple[int | None, str], float] = defaultdict(float)
    for queue_id, _m, label, le, _h, n, seconds in tally.sums((metric,)):
        key = (queue_id, label)
        raw[key][le] = raw[key].get(le, 0) + n
        sums[key] += seconds
    out = {}
    labels = [tally.le_label(b) for b in bounds] + ["+Inf"]
    for key, by_le in raw.items():
        running = 0
        buckets = []
        for le in labels:
            running += by_le.get(le, 0)
            buckets.append((le, running))
        out[key] = Histogram(buckets=buckets, total=sums[key])
    return out


def decisions_by_type() -> dict[tuple[int | None, str], int]:
    return {(q, label): n for q, _m, label, _le, _h, n, _s in tally.sums(("decision",))}


# --- machinery ---------------------------------------------------------------------------------

# kombu's Redis transport keeps a queue's messages of priority 3, 6 and 9 under suffixed keys.
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (0, 3, 6, 9)
DEFAULT_CELERY_QUEUE = "celery"


def celery_queues(workers: list[dict[str, Any]] | None = None) -> list[str]:
    """The Celery queues to watch: the default, every routed graph's, and what workers consume."""
    names = {DEFAULT_CELERY_QUEUE, *settings.REVIEWDESK_WORKER_QUEUES.values()}
    for worker in workers or []:
        names.update(worker.get("queues") or [])
    return sorted(names)


def broker_queues(client: Any, names: list[str], *, now: float) -> list[dict[str, Any]]:
    """Depth of each broker queue and the age of the task that has waited longest in it.

    The oldest message is at the tail of the list (kombu pushes left, pops right); its age
    comes from the enqueue time every desk process stamps on the tasks it sends.
    """
    import json

    from reviewdesk.services.ops import SENT_AT_HEADER

    out = []
    for name in names:
        keys = [name if step == 0 else f"{name}{_PRIORITY_SEP}{step}" for step in _PRIORITY_STEPS]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.llen(key)
        for key in keys:
            pipe.lindex(key, -1)
        replies = pipe.execute()
        depth = sum(replies[: len(keys)])
        oldest = None
        for raw in replies[len(keys) :]:
            if raw is None:
                continue
            try:
                sent = json.loads(raw).get("headers", {}).get(SENT_AT_HEADER)
            except (ValueError, AttributeError):
                continue
            if isinstance(sent, int | float):
                oldest = max(oldest or 0.0, now - sent)
        out.append({"queue": name, "depth": depth, "oldest_age_s": oldest})
    return out


def machinery(*, now: float | None = None) -> dict[str, Any]:
    """Workers, broker queues, beat, Redis and the database as one dict (never raises)."""
    import json
    import time

    from django.db import connection

    from reviewdesk.services import ops as ops_services

    now = time.time() if now is None else now
    out: dict[str, Any] = {
        "redis": {"ok": False, "error": ""},
        "database": {"ok": False, "error": ""},
        "workers": [],
        "broker": [],
        "beat": None,
        "ran": {},
        "websockets": None,
    }
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        out["database"]["ok"] = True
    except Exception as exc:
        out["database"]["error"] = f"{type(exc).__name__}: {exc}"[:200]
    try:
        client = ops_services.redis_client()
        client.ping()
        out["redis"]["ok"] = True
        keys = sorted(client.scan_iter(ops_services.WORKER_KEY + "*", count=500))
        workers = []
        for raw in client.mget(keys) if keys else []:
            if raw is None:
                continue
            info = json.loads(raw)
            age = max(0.0, now - float(info.get("at", 0)))
            info["heartbeat_age_s"] = round(age, 1)
            # Online: says so, and said it within three heartbeats.
            info["online"] = bool(info.get("online")) and age < 3 * ops_services.HEARTBEAT_EVERY
            workers.append(info)
        out["workers"] = workers
        out["broker"] = broker_queues(client, celery_queues(workers), now=now)
        beat = client.get(ops_services.BEAT_KEY)
        if beat:
            info = json.loads(beat)
            out["beat"] = {**info, "age_s": round(max(0.0, now - info["at"]), 1)}
        for task in ("reviewdesk.tasks.threads_reconcile", "reviewdesk.tasks.ops_sweep"):
            ran = client.get(ops_services.RAN_KEY + task)
            if ran:
                info = json.loads(ran)
                out["ran"][task.rsplit(".", 1)[-1]] = {
                    **info,
                    "age_s": round(max(0.0, now - info["at"]), 1),
                }
        socket_keys = list(client.scan_iter(ops_services.SOCKETS_KEY + "*", count=500))
        counts = client.mget(socket_keys) if socket_keys else []
        out["websockets"] = sum(int(c) for c in counts if c is not None)
    except Exception as exc:
        out["redis"]["error"] = f"{type(exc).__name__}: {exc}"[:200]
    return out
