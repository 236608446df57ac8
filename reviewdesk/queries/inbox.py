"""Review queues and items a user may see and answer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from reviewdesk.models import Queue, ReviewItem

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


def queues_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Queue]:
    """Staff see every queue; reviewers the queues of their groups."""
    if not user.is_authenticated:
        return Queue.objects.none()
    if user.is_staff:
        return Queue.objects.all()
    return Queue.objects.filter(groups__user=user).distinct()


def user_can_review(user: AbstractBaseUser | AnonymousUser, queue_id: int) -> bool:
    return queues_for_user(user).filter(pk=queue_id).exists()


def review_items_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[ReviewItem]:
    return ReviewItem.objects.filter(queue__in=queues_for_user(user)).select_related(
        "thread", "queue", "answered_by"
    )


def review_items_pending(
    user: AbstractBaseUser | AnonymousUser, *, queue: Queue | None = None
) -> QuerySet[ReviewItem]:
    """The review queue: pending items, oldest first."""
    items = review_items_for_user(user).filter(status=ReviewItem.Status.PENDING)
    if queue is not None:
        items = items.filter(queue=queue)
    return items.order_by("created_at", "id")


def review_item_version(
    item: ReviewItem, user: AbstractBaseUser | AnonymousUser | None = None
) -> str:
    """A token that changes whenever anything the item page shows about the item changes.

    Read from the content, not from updated_at, so no way of saving the row can slip past it.
    For a user, it also changes when someone else's claim starts or ends (whether *they* may
    answer), but not when their own claim is taken or renewed: their form must not be redrawn
    under their fingers.
    """
    holder = item.claim_holder()
    blocked_by = holder if user is None or holder != getattr(user, "pk", None) else None
    shown = [
        blocked_by,
        item.status,
        item.answered_by_id,
        item.answered_at,
        item.applied_at,
        item.answer,
        item.value,
        item.response_schema,
    ]
    text = json.dumps(shown, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- the workbench's views: keyset pages that stay fast at a million items -----------------------

VIEWS = {
    "queues": "My queues",
    "mine": "Mine",
    "all": "All I may see",
    "decided": "Decided by me",
    "recent": "Recently decided",
}
VIEW_HELP = {
    "queues": "Pending items of your queues that nobody else has claimed.",
    "mine": "Pending items you have claimed.",
    "all": "Every item of your queues, newest first, whatever its status.",
    "decided": "Items you answered, latest first.",
    "recent": "Items anyone answered in your queues, latest first.",
}
SORTS = {"age": "Oldest first", "-age": "Newest first", "priority": "Priority"}
AGES = {
    "": "Any age",
    "lt1h": "Asked in the last hour",
    "gt1h": "Waiting over an hour",
    "gt1d": "Waiting over a day",
}
# Pending counts stop here: an exact count of a million rows costs more than a whole page.
COUNT_CAP = 1000


@dataclass(frozen=True)
class Filters:
    """Everything a list view is, read from (and written back to) its URL."""

    view: str = "queues"
    queue: str = ""
    graph: str = ""
    node: str = ""
    age: str = ""
    q: str = ""
    sort: str = "age"

    @classmethod
    def from_query(cls, query: Any) -> Filters:
        def pick(name: str, allowed: Any = None, default: str = "") -> str:
            value = str(query.get(name, default) or default).strip()[:200].replace("\x00", "")
            return value if allowed is None or value in allowed else default

        return cls(
            view=pick("view", VIEWS, "queues"),
            queue=pick("queue"),
            graph=pick("graph"),
            node=pick("node"),
            age=pick("age", AGES),
            q=pick("q"),
            sort=pick("sort", SORTS, "age"),
        )

    def query(self, **changes: str) -> str:
        """The URL query of these filters (defaults left out), with some changed."""
        values = {**asdict(self), **changes}
        defaults = asdict(Filters())
        return urlencode({k: v for k, v in values.items() if v and v != defaults.get(k)})

    @property
    def filtered(self) -> bool:
        return bool(self.queue or self.graph or self.node or self.age or self.q)

    def pairs(self) -> list[tuple[str, str]]:
        """The non-default filters as (name, value), for hidden inputs of forms."""
        defaults = asdict(Filters())
        return [(k, v) for k, v in asdict(self).items() if v and v != defaults.get(k)]

    @property
    def pending_view(self) -> bool:
        return self.view in ("queues", "mine")


@dataclass
class Page:
    items: list[ReviewItem]
    next_cursor: str = ""
    first: bool = True


def _order(filters: Filters) -> tuple[list[str], bool]:
    """(fields of the order, descending?) of a view; the last field is always id."""
    if filters.view in ("decided", "recent"):
        return ["answered_at", "id"], True
    if filters.view == "all":
        return ["created_at", "id"], True
    if filters.sort == "priority":
        return ["-priority", "created_at", "id"], False
    return ["created_at", "id"], filters.sort == "-age"


def _key(item: ReviewItem, fields: list[str]) -> tuple[Any, ...]:
    return tuple(-item.priority if f == "-priority" else getattr(item, f) for f in fields)


def encode_cursor(item: ReviewItem, filters: Filters) -> str:
    fields, _ = _order(filters)
    parts = []
    for f in fields:
        value = item.priority if f == "-priority" else getattr(item, f)
        parts.append(value.isoformat() if hasattr(value, "isoformat") else str(value))
    return "~".join(parts)


def _decode_cursor(cursor: str, filters: Filters) -> tuple[Any, ...] | None:
    fields, _ = _order(filters)
    parts = cursor.split("~")
    if len(parts) != len(fields):
        return None
    decoded: list[Any] = []
    try:
        for f, part in zip(fields, parts, strict=True):
            if f in ("created_at", "answered_at"):
                moment = datetime.fromisoformat(part)
                decoded.append(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
            else:
                decoded.append(int(part))
    except ValueError:
        return None
    return tuple(decoded)


def _after(fields: list[str], values: tuple[Any, ...], descending: bool) -> Q:
    """Rows strictly after `values` in the order: (a, b, c) > (x, y, z), spelled out.

    Written as nested OR/AND rather than a row comparison so every database can walk the
    index from the cursor on.
    """
    condition = Q()
    for n in range(len(fields) - 1, -1, -1):
        name = fields[n]
        value = values[n]
        column = "priority" if name == "-priority" else name
        # The cursor keeps the raw priority; -priority ascending means priority descending.
        flip = (name == "-priority") != descending
        strictly = Q(**{f"{column}__{'lt' if flip else 'gt'}": value})
        if n == len(fields) - 1:
            condition = strictly
        else:
            condition = strictly | (Q(**{column: value}) & condition)
    # Also a plain range on the leading column, which an index can seek to: with the OR alone,
    # SQLite walked the index from the start of the queue up to the cursor.
    first = fields[0]
    column = "priority" if first == "-priority" else first
    flip = (first == "-priority") != descending
    return Q(**{f"{column}__{'lte' if flip else 'gte'}": values[0]}) & condition


def _base(user: Any, filters: Filters, now: Any) -> QuerySet[ReviewItem]:
    items = ReviewItem.objects.all()
    if filters.view == "queues":
        items = items.filter(status=ReviewItem.Status.PENDING).exclude(
            Q(claimed_until__gt=now) & ~Q(claimed_by=user) & Q(claimed_by__isnull=False)
        )
    elif filters.view == "mine":
        items = items.filter(
            status=ReviewItem.Status.PENDING, claimed_by=user, claimed_until__gt=now
        )
    elif filters.view == "decided":
        items = items.filter(answered_by=user)
    elif filters.view == "recent":
        items = items.filter(answered_at__isnull=False)
    if filters.graph:
        items = items.filter(thread__graph=filters.graph)
    if filters.node:
        items = items.filter(node=filters.node)
    if filters.age == "lt1h":
        items = items.filter(created_at__gte=now - timedelta(hours=1))
    elif filters.age == "gt1h":
        items = items.filter(created_at__lt=now - timedelta(hours=1))
    elif filters.age == "gt1d":
        items = items.filter(created_at__lt=now - timedelta(days=1))
    if filters.q:
        items = items.annotate(value_text=Cast("value", TextField())).filter(
            value_text__icontains=filters.q
        )
    return items


def queue_ids_for(user: Any, filters: Filters) -> list[int]:
    """The ids of the queues the view reads, resolved first (one small query).

    Filtering items by a subquery of the user's queues kept the database from walking the
    (queue, status, created_at, id) index: 1.1 s at a million items. Reading each queue along
    its index and merging is what keeps a page at milliseconds.
    """
    queues = queues_for_user(user)
    if filters.queue:
        queues = queues.filter(slug=filters.queue)
    return list(queues.values_list("pk", flat=True))


def review_items_page(
    user: Any, filters: Filters, *, cursor: str = "", size: int = 50, now: Any = None
) -> Page:
    """One page of a view: at most `size` items after the cursor, and the cursor of the next."""
    now = now or timezone.now()
    fields, descending = _order(filters)
    order_by = [
        ("priority" if descending else "-priority")
        if f == "-priority"
        else (f"-{f}" if descending else f)
        for f in fields
    ]
    start = _decode_cursor(cursor, filters) if cursor else None
    base = _base(user, filters, now)
    queue_ids = queue_ids_for(user, filters)

    def read(items: QuerySet[ReviewItem]) -> list[ReviewItem]:
        """Up to size + 1 rows after the cursor, each part walking one index range.

        Only the order's columns: the rows shown are read once more, whole, below; building
        every candidate's payloads here cost a fifth of the page.
        """
        items = items.only(*{"priority" if f == "-priority" else f for f in fields})
        if start is None:
            return list(items.order_by(*order_by)[: size + 1])
        # Rows that tie with the cursor on the leading column, then the rows after it: two
        # ranges an index serves, where one OR condition made SQLite scan from the top.
        first = fields[0]
        column = "priority" if first == "-priority" else first
        flip = (first == "-priority") != descending
        same = list(
            items.filter(**{column: start[0]})
            .filter(_after(fields[1:], start[1:], descending))
            .order_by(*order_by)[: size + 1]
        )
        rest = items.filter(**{f"{column}__{'lt' if flip else 'gt'}": start[0]})
        return same + list(rest.order_by(*order_by)[: size + 1 - len(same)])

    if filters.view == "decided":
        # One index (answered_by, answered_at, id) serves it; queues only restrict it.
        found = read(base.filter(queue_id__in=queue_ids))
    else:
        found = []
        for queue_id in queue_ids:
            found += read(base.filter(queue_id=queue_id))
        found.sort(key=lambda i: _key(i, fields), reverse=descending)
        found = found[: size + 1]
    ids = [i.pk for i in found[:size]]
    by_id = {
        i.pk: i
        for i in ReviewItem.objects.filter(pk__in=ids).select_related(
            "thread", "queue", "answered_by", "claimed_by"
        )
    }
    items = [by_id[pk] for pk in ids if pk in by_id]
    next_cursor = encode_cursor(items[-1], filters) if len(found) > size and items else ""
    return Page(items=items, next_cursor=next_cursor, first=start is None)


def pending_count(user: Any) -> tuple[int, bool]:
    """Pending items of the user's queues, counted up to COUNT_CAP per queue: (count, capped)."""
    total, capped = 0, False
    for queue_id in queues_for_user(user).values_list("pk", flat=True):
        n = (
            ReviewItem.objects.filter(queue_id=queue_id, status=ReviewItem.Status.PENDING)
            .order_by()[:COUNT_CAP]
            .count()
        )
        total += n
        capped = capped or n >= COUNT_CAP
    return total, capped


def next_item(user: Any, filters: Filters, current: ReviewItem) -> ReviewItem | None:
    """The item to open after deciding `current`: the next pending one of the same view that
    the user may answer, else the first such one from the top."""
    pending = filters if filters.pending_view else Filters(**{**asdict(filters), "view": "queues"})
    cursor = encode_cursor(current, pending)
    for start in (cursor, ""):
        page = review_items_page(user, pending, cursor=start, size=5)
        for item in page.items:
            if item.pk != current.pk and item.status == ReviewItem.Status.PENDING:
                return item
    return None
