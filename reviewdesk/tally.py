"""Tallies kept by the database itself, so ops figures cost the same at 1,000 or 1,000,000 items.

Counting every item per queue and status at each scrape grows with the table (an exact
``COUNT(*)`` over a million rows takes tens of milliseconds, see ``shared/PLATFORM.md``), and
counters kept by one Python process are wrong as soon as there are two, or a write goes
around the model (``QuerySet.update()``, bulk SQL, the admin, another engineer's code path).
So triggers on items, threads, runs and audit events append *deltas* to ``OpsTally`` inside the
writer's own transaction: what commits is counted, what rolls back is not, whoever wrote it.
Rows are only ever inserted (no hot counter row to lock, no deadlock between transactions
that touch two statuses), readers sum them, and ``tally_compact()`` (beat) folds them together
so the sums stay a few thousand rows at most.

Metrics (``metric`` column; ``hour`` is hours since the epoch, UTC):

- ``items``    label=status                items per queue and status (a gauge)
- ``pending``  hour=created hour           pending items by the hour they were created (ages)
- ``created``  hour                        items created per hour (kept 48 h)
- ``decided``  hour                        decisions per hour (kept 48 h)
- ``decision_s`` le, seconds, hour=decided time from item creation to decision (histogram)
- ``reviewer`` label=user id, hour         decisions per reviewer per hour (kept 48 h)
- ``decision`` label=type                  decisions by type (approve, reject, answer, ...)
- ``threads``  label=status                threads per queue and status
- ``step_s``   label=graph, le, seconds    duration of a run (one plan → run → record round)
- ``resume_s`` le, seconds                 from a decision to the start of the run resuming it
- ``claim_s``  le, seconds, hour=claimed  from item creation to its first ``item_claimed``

Histograms keyed by hour give the last day's percentiles without reading the day's rows;
compaction folds their hours older than ``HOURLY_KEEP`` into one all-time row per bucket.

Bucket bounds are part of the triggers: changing them takes a migration that calls
``install()`` again and ``rebuild()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import connection, transaction

DECISION_BUCKETS: tuple[float, ...] = (
    5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200, 604800,
)  # fmt: skip
STEP_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900,
)  # fmt: skip
RESUME_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
)  # fmt: skip
DECISION_TYPES = (
    "approve", "edit", "reject", "respond", "accept", "ignore", "response", "continue", "answer",
)  # fmt: skip
# Hourly series older than this are dropped by compaction: the ops chart shows 24 h.
HOURLY_KEEP = 48
HOURLY = ("created", "decided", "reviewer")
FOLDED = ("decision_s", "claim_s")

TALLY = "reviewdesk_opstally"
ITEM = "reviewdesk_reviewitem"
THREAD = "reviewdesk_thread"
RUN = "reviewdesk_run"
AUDIT = "reviewdesk_auditevent"


def le_label(bound: float) -> str:
    """A bucket bound as Prometheus writes it ("0.005", "60.0" → "60")."""
    return f"{bound:g}"


@dataclass(frozen=True)
class _Sql:
    """The few expressions SQLite and PostgreSQL spell differently."""

    vendor: str

    @property
    def pg(self) -> bool:
        return self.vendor == "postgresql"

    @property
    def text(self) -> str:
        return "text" if self.pg else "TEXT"

    def hour(self, x: str) -> str:
        if self.pg:
            return f"floor(extract(epoch from {x}) / 3600)::bigint"
        return f"(CAST(strftime('%s', {x}) AS INTEGER) / 3600)"

    def seconds(self, later: str, earlier: str) -> str:
        if self.pg:
            return f"extract(epoch from ({later} - {earlier}))::float8"
        return f"((julianday({later}) - julianday({earlier})) * 86400.0)"

    def differs(self, a: str, b: str) -> str:
        return f"{a} IS DISTINCT FROM {b}" if self.pg else f"{a} IS NOT {b}"

    def bucket(self, seconds: str, bounds: Sequence[float]) -> str:
        whens = " ".join(f"WHEN {seconds} <= {b!r} THEN '{le_label(b)}'" for b in bounds)
        return f"CASE {whens} ELSE '+Inf' END"

    def decisions_array(self, answer: str) -> str:
        """The answer's list of typed decisions (HITL batch or Agent Inbox), else empty."""
        if self.pg:
            return (
                f"jsonb_array_elements(CASE WHEN jsonb_typeof({answer}->'decisions') = 'array' "
                f"THEN {answer}->'decisions' WHEN jsonb_typeof({answer}) = 'array' "
                f"THEN {answer} ELSE '[]'::jsonb END)"
            )
        return (
            f"json_each(CASE WHEN json_type({answer}, '$.decisions') = 'array' "
            f"THEN json_extract({answer}, '$.decisions') WHEN json_type({answer}) = 'array' "
            f"THEN {answer} ELSE '[]' END)"
        )

    def element_type(self, alias: str) -> str:
        return (
            f"lower({alias}->>'type')"
            if self.pg
            else f"lower(json_extract({alias}.value, '$.type'))"
        )

    def has_decisions(self, answer: str) -> str:
        if self.pg:
            return (
                f"(COALESCE(jsonb_typeof({answer}->'decisions'), '') = 'array' "
                f"OR COALESCE(jsonb_typeof({answer}), '') = 'array')"
            )
        # COALESCE: a NULL here would make NOT (...) NULL too, and drop the row.
        return (
            f"(COALESCE(json_type({answer}, '$.decisions'), '') = 'array' "
            f"OR COALESCE(json_type({answer}), '') = 'array')"
        )

    def object_type(self, answer: str) -> str:
        if self.pg:
            return f"CASE WHEN jsonb_typeof({answer}) = 'object' THEN lower({answer}->>'type') END"
        extract = f"lower(json_extract({answer}, '$.type'))"
        return f"CASE WHEN json_type({answer}) = 'object' THEN {extract} END"

    def item_in_run(self, item: str, run: str) -> str:
        """Is the item one of the comma-separated ids a run delivered?"""
        if self.pg:
            return f"{item}.id = ANY(string_to_array(NULLIF({run}.items, ''), ',')::bigint[])"
        return f"instr(',' || {run}.items || ',', ',' || {item}.id || ',') > 0"


def _insert(
    *,
    queue: str,
    metric: str,
    label: str = "''",
    le: str = "''",
    hour: str = "NULL",
    n: str = "1",
    seconds: str = "0",
    source: str = "",
    where: str = "1 = 1",
    group_by: str = "",
) -> str:
    group = f" GROUP BY {group_by}" if group_by else ""
    return (
        f"INSERT INTO {TALLY} (queue_id, metric, label, le, hour, n, seconds) "
        f"SELECT {queue}, '{metric}', {label}, {le}, {hour}, {n}, {seconds}"
        f"{' FROM ' + source if source else ''} WHERE {where}{group}"
    )


def _normalised(kind: str) -> str:
    types = ", ".join(f"'{t}'" for t in DECISION_TYPES)
    return f"CASE WHEN {kind} IN ({types}) THEN {kind} ELSE 'answer' END"


def _decision_rows(sql: _Sql, r: str, *, table: str = "") -> list[str]:
    """SELECTs (queue_id, kind) of the decisions in row `r`'s answer; `table`: scan the table."""
    rows_from = f"{table} {r}, " if table else ""
    row_only = f" FROM {table} {r}" if table else ""
    answered = f"{r}.answered_at IS NOT NULL" if table else "1 = 1"
    typed = (
        f"SELECT {r}.queue_id AS queue_id, {sql.element_type('d')} AS kind "
        f"FROM {rows_from}{sql.decisions_array(r + '.answer')} AS d "
        f"WHERE {answered} AND {r}.kind <> 'breakpoint'"
    )
    single = (
        f"SELECT {r}.queue_id AS queue_id, CASE WHEN {r}.kind = 'breakpoint' THEN 'continue' "
        f"ELSE {sql.object_type(r + '.answer')} END AS kind{row_only} "
        f"WHERE {answered} AND NOT ({r}.kind <> 'breakpoint' "
        f"AND {sql.has_decisions(r + '.answer')})"
    )
    return [typed, single]


# --- triggers ----------------------------------------------------------------------------------


def _item_statements(sql: _Sql) -> dict[str, list[str]]:
    """What an item's insert, update and delete add to the tally (rows NEW / OLD)."""

    def gone(r: str, where: str) -> list[str]:
        return [
            _insert(
                queue=f"{r}.queue_id", metric="items", label=f"{r}.status", n="-1", where=where
            ),
            _insert(
                queue=f"{r}.queue_id",
                metric="pending",
                hour=sql.hour(f"{r}.created_at"),
                n="-1",
                where=f"{where} AND {r}.status = 'pending'",
            ),
        ]

    def came(r: str, where: str) -> list[str]:
        return [
            _insert(queue=f"{r}.queue_id", metric="items", label=f"{r}.status", where=where),
            _insert(
                queue=f"{r}.queue_id",
                metric="pending",
                hour=sql.hour(f"{r}.created_at"),
                where=f"{where} AND {r}.status = 'pending'",
            ),
        ]

    def decided(where: str) -> list[str]:
        took = sql.seconds("NEW.answered_at", "NEW.created_at")
        kinds = " UNION ALL ".join(_decision_rows(sql, "NEW"))
        return [
            _insert(
                queue="NEW.queue_id",
                metric="decided",
                hour=sql.hour("NEW.answered_at"),
                where=where,
            ),
            _insert(
                queue="NEW.queue_id",
                metric="decision_s",
                le=sql.bucket(took, DECISION_BUCKETS),
                hour=sql.hour("NEW.answered_at"),
                seconds=took,
                where=where,
            ),
            _insert(
                queue="NEW.queue_id",
                metric="reviewer",
                label=f"COALESCE(CAST(NEW.answered_by_id AS {sql.text}), '')",
                hour=sql.hour("NEW.answered_at"),
                where=where,
            ),
            _insert(
                queue="k.queue_id",
                metric="decision",
                label=_normalised("k.kind"),
                source=f"({kinds}) AS k",
                where=where,
            ),
        ]

    # created_at never changes in the desk, but a data fix or a seed may move it.
    moved = (
        f"({sql.differs('OLD.status', 'NEW.status')} "
        f"OR {sql.differs('OLD.queue_id', 'NEW.queue_id')} "
        f"OR {sql.differs('OLD.created_at', 'NEW.created_at')})"
    )
    first_decision = "NEW.answered_at IS NOT NULL"
    return {
        "INSERT": [
            *came("NEW", "1 = 1"),
            _insert(queue="NEW.queue_id", metric="created", hour=sql.hour("NEW.created_at")),
            *decided(first_decision),
        ],
        "UPDATE": [
            *gone("OLD", moved),
            *came("NEW", moved),
            *[
                _insert(
                    queue=f"{r}.queue_id",
                    metric="created",
                    hour=sql.hour(f"{r}.created_at"),
                    n=n,
                    where=sql.differs("OLD.created_at", "NEW.created_at"),
                )
                for r, n in (("OLD", "-1"), ("NEW", "1"))
            ],  # fmt: skip
            *decided(f"OLD.answered_at IS NULL AND {first_decision}"),
        ],
        "DELETE": gone("OLD", "1 = 1"),
    }


def _thread_statements(sql: _Sql) -> dict[str, list[str]]:
    moved = (
        f"({sql.differs('OLD.status', 'NEW.status')} "
        f"OR {sql.differs('OLD.queue_id', 'NEW.queue_id')})"
    )
    return {
        "INSERT": [_insert(queue="NEW.queue_id", metric="threads", label="NEW.status")],
        "UPDATE": [
            _insert(
                queue="OLD.queue_id", metric="threads", label="OLD.status", n="-1", where=moved
            ),
            _insert(queue="NEW.queue_id", metric="threads", label="NEW.status", where=moved),
        ],
        "DELETE": [_insert(queue="OLD.queue_id", metric="threads", label="OLD.status", n="-1")],
    }


def _run_statements(sql: _Sql) -> dict[str, list[str]]:
    took = sql.seconds("NEW.finished_at", "NEW.started_at")
    step = _insert(
        queue="t.queue_id",
        metric="step_s",
        label="t.graph",
        le=sql.bucket(took, STEP_BUCKETS),
        seconds=took,
        source=f"{THREAD} t",
        where="t.id = NEW.thread_id AND NEW.finished_at IS NOT NULL AND NEW.outcome <> 'lost'",
    )
    waited = sql.seconds("NEW.started_at", "w.answered")
    earliest = (
        f"(SELECT min(i.answered_at) AS answered, max(i.queue_id) AS queue_id FROM {ITEM} i "
        f"WHERE i.thread_id = NEW.thread_id AND {sql.item_in_run('i', 'NEW')}) AS w"
    )
    resume = _insert(
        queue="w.queue_id",
        metric="resume_s",
        le=sql.bucket(waited, RESUME_BUCKETS),
        seconds=waited,
        source=earliest,
        where="NEW.kind = 'resume' AND NEW.items <> '' AND w.answered IS NOT NULL",
    )
    return {
        "INSERT": [step, resume],
        "UPDATE": [step.replace("NEW.finished_at IS NOT NULL", "OLD.finished_at IS NULL AND "
                                "NEW.finished_at IS NOT NULL")],
    }  # fmt: skip


def _audit_statements(sql: _Sql) -> dict[str, list[str]]:
    took = sql.seconds("NEW.created_at", "i.created_at")
    return {
        "INSERT": [
            _insert(
                queue="i.queue_id",
                metric="claim_s",
                le=sql.bucket(took, DECISION_BUCKETS),
                hour=sql.hour("NEW.created_at"),
                seconds=took,
                source=f"{ITEM} i",
                where=(
                    "NEW.action = 'item_claimed' AND i.id = NEW.item_id AND NOT EXISTS "
                    f"(SELECT 1 FROM {AUDIT} a WHERE a.item_id = NEW.item_id "
                    "AND a.action = 'item_claimed' AND a.id <> NEW.id)"
                ),
            )
        ]
    }


TRIGGERS = {
    ITEM: _item_statements,
    THREAD: _thread_statements,
    RUN: _run_statements,
    AUDIT: _audit_statements,
}


def install_sql(vendor: str) -> list[str]:
    """The statements that (re)create every tally trigger on this database."""
    sql = _Sql(vendor)
    out = []
    for table, build in TRIGGERS.items():
        statements = build(sql)
        name = f"{table}_tally"
        if sql.pg:
            branches = "".join(
                f"IF TG_OP = '{op}' THEN {'; '.join(body)}; END IF; "
                for op, body in statements.items()
            )
            out.append(
                f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN {branches}RETURN NULL; END $$"
            )
            out.append(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            ops = " OR ".join(statements)
            out.append(
                f"CREATE TRIGGER {name} AFTER {ops} ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {name}()"
            )
        else:
            for op, body in statements.items():
                trigger = f"{name}_{op.lower()}"
                out.append(f"DROP TRIGGER IF EXISTS {trigger}")
                out.append(
                    f"CREATE TRIGGER {trigger} AFTER {op} ON {table} FOR EACH ROW BEGIN "
                    + "".join(f"{s}; " for s in body)
                    + "END"
                )
    return out


def uninstall_sql(vendor: str) -> list[str]:
    out = []
    for table in TRIGGERS:
        name = f"{table}_tally"
        if vendor == "postgresql":
            out += [
                f"DROP TRIGGER IF EXISTS {name} ON {table}",
                f"DROP FUNCTION IF EXISTS {name}()",
            ]
        else:
            out += [f"DROP TRIGGER IF EXISTS {name}_{op}" for op in ("insert", "update", "delete")]
    return out


def install(schema_editor: object = None) -> None:
    """Create the triggers (a migration step; safe to run again)."""
    with connection.cursor() as cursor:
        for statement in install_sql(connection.vendor):
            cursor.execute(statement)


# --- rebuild and compaction -------------------------------------------------------------------


def rebuild_sql(vendor: str) -> list[str]:
    """Recount the tally from the rows as they are now (after a bulk load, or a migration).

    History that rows no longer show (a decision later re-asked, a deleted thread's runs) is
    not recounted: the live triggers count events, a rebuild counts what is left of them.
    """
    sql = _Sql(vendor)
    took = sql.seconds("i.answered_at", "i.created_at")
    run_took = sql.seconds("r.finished_at", "r.started_at")
    kinds = " UNION ALL ".join(_decision_rows(sql, "i", table=ITEM))
    waited = sql.seconds("r.started_at", "min(i.answered_at)")
    claimed = sql.seconds("c.first", "i.created_at")
    return [
        f"DELETE FROM {TALLY}",
        _insert(queue="i.queue_id", metric="items", label="i.status", n="count(*)",
                source=f"{ITEM} i", group_by="i.queue_id, i.status"),
        _insert(queue="i.queue_id", metric="pending", hour=sql.hour("i.created_at"),
                n="count(*)", source=f"{ITEM} i", where="i.status = 'pending'",
                group_by=f"i.queue_id, {sql.hour('i.created_at')}"),
        _insert(queue="i.queue_id", metric="created", hour=sql.hour("i.created_at"),
                n="count(*)", source=f"{ITEM} i",
                group_by=f"i.queue_id, {sql.hour('i.created_at')}"),
        _insert(queue="i.queue_id", metric="decided", hour=sql.hour("i.answered_at"),
                n="count(*)", source=f"{ITEM} i", where="i.answered_at IS NOT NULL",
                group_by=f"i.queue_id, {sql.hour('i.answered_at')}"),
        _insert(queue="i.queue_id", metric="decision_s", le=sql.bucket(took, DECISION_BUCKETS),
                hour=sql.hour("i.answered_at"), n="count(*)", seconds=f"sum({took})",
                source=f"{ITEM} i", where="i.answered_at IS NOT NULL",
                group_by=(f"i.queue_id, {sql.bucket(took, DECISION_BUCKETS)}, "
                          f"{sql.hour('i.answered_at')}")),
        _insert(queue="i.queue_id", metric="reviewer",
                label=f"COALESCE(CAST(i.answered_by_id AS {sql.text}), '')",
                hour=sql.hour("i.answered_at"), n="count(*)", source=f"{ITEM} i",
                where="i.answered_at IS NOT NULL",
                group_by=f"i.queue_id, i.answered_by_id, {sql.hour('i.answered_at')}"),
        _insert(queue="k.queue_id", metric="decision", label=_normalised("k.kind"), n="count(*)",
                source=f"({kinds}) AS k", group_by=f"k.queue_id, {_normalised('k.kind')}"),
        _insert(queue="t.queue_id", metric="threads", label="t.status", n="count(*)",
                source=f"{THREAD} t", group_by="t.queue_id, t.status"),
        _insert(queue="t.queue_id", metric="step_s", label="t.graph",
                le=sql.bucket(run_took, STEP_BUCKETS), n="count(*)", seconds=f"sum({run_took})",
                source=f"{RUN} r JOIN {THREAD} t ON t.id = r.thread_id",
                where="r.finished_at IS NOT NULL AND r.outcome <> 'lost'",
                group_by=f"t.queue_id, t.graph, {sql.bucket(run_took, STEP_BUCKETS)}"),
        _insert(queue="w.queue_id", metric="resume_s", le=sql.bucket("w.waited", RESUME_BUCKETS),
                n="count(*)", seconds="sum(w.waited)",
                source=(f"(SELECT max(i.queue_id) AS queue_id, {waited} AS waited "
                        f"FROM {RUN} r JOIN {ITEM} i ON i.thread_id = r.thread_id "
                        f"AND {sql.item_in_run('i', 'r')} WHERE r.kind = 'resume' "
                        f"AND i.answered_at IS NOT NULL GROUP BY r.id, r.started_at) AS w"),
                group_by=f"w.queue_id, {sql.bucket('w.waited', RESUME_BUCKETS)}"),
        _insert(queue="i.queue_id", metric="claim_s", le=sql.bucket(claimed, DECISION_BUCKETS),
                hour=sql.hour("c.first"), n="count(*)", seconds=f"sum({claimed})",
                source=(f"(SELECT a.item_id AS item_id, min(a.created_at) AS first FROM {AUDIT} a "
                        f"WHERE a.action = 'item_claimed' AND a.item_id IS NOT NULL "
                        f"GROUP BY a.item_id) AS c JOIN {ITEM} i ON i.id = c.item_id"),
                group_by=(f"i.queue_id, {sql.bucket(claimed, DECISION_BUCKETS)}, "
                          f"{sql.hour('c.first')}")),
    ]  # fmt: skip


def rebuild() -> None:
    """Recount everything from the rows, in one transaction that keeps writers out meanwhile."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Writers wait (briefly) so no delta lands between the DELETE and the recount.
            cursor.execute(f"LOCK TABLE {ITEM}, {THREAD}, {RUN}, {AUDIT} IN SHARE MODE")
        for statement in rebuild_sql(connection.vendor):
            cursor.execute(statement)


def tally_compact(*, now_hour: int | None = None) -> int:
    """Fold the deltas into one row per key; drop zero rows and old hourly series.

    Safe beside writers: on PostgreSQL one statement deletes exactly the rows it sums (rows
    committed meanwhile stay for the next run); SQLite runs it under its write lock.
    """
    import time

    now_hour = int(time.time() // 3600) if now_hour is None else now_hour
    keep_from = now_hour - HOURLY_KEEP
    hourly = ", ".join(f"'{m}'" for m in HOURLY)
    drop = f"metric IN ({hourly}) AND hour < {keep_from}"
    keys = "queue_id, metric, label, le, hour"
    folded = ", ".join(f"'{m}'" for m in FOLDED)
    # Old hours of the histograms become one all-time row per bucket (hour NULL).
    hour_kept = f"CASE WHEN metric IN ({folded}) AND hour < {keep_from} THEN NULL ELSE hour END"
    picked = f"queue_id, metric, label, le, {hour_kept}"
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"WITH gone AS (DELETE FROM {TALLY} RETURNING {keys}, n, seconds) "
                f"INSERT INTO {TALLY} ({keys}, n, seconds) "
                f"SELECT {picked}, sum(n), sum(seconds) FROM gone WHERE NOT ({drop}) "
                f"GROUP BY {picked} HAVING sum(n) <> 0 OR sum(seconds) <> 0"
            )
        else:
            cursor.execute(f"SELECT max(id) FROM {TALLY}")
            (last,) = cursor.fetchone()
            if last is None:
                return 0
            cursor.execute(
                f"INSERT INTO {TALLY} ({keys}, n, seconds) "
                f"SELECT {picked}, sum(n), sum(seconds) FROM {TALLY} "
                f"WHERE id <= %s AND NOT ({drop}) "
                f"GROUP BY {picked} HAVING sum(n) <> 0 OR sum(seconds) <> 0",
                [last],
            )
            cursor.execute(f"DELETE FROM {TALLY} WHERE id <= %s", [last])
        cursor.execute(f"SELECT count(*) FROM {TALLY}")
        left = cursor.fetchone()[0]
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        # The fold left every summed row dead: until vacuumed, each read of the (now small)
        # table still walks them (a million-row bulk load made a scrape take a second).
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {TALLY}")
    return left


# --- reading -------------------------------------------------------------------------------------


def sums(metrics: Iterable[str], *, since_hour: int | None = None) -> list[tuple]:
    """(queue_id, metric, label, le, hour, n, seconds) summed per key, for these metrics."""
    metrics = list(metrics)
    marks = ", ".join(["%s"] * len(metrics))
    params: list[object] = list(metrics)
    hour_filter = ""
    if since_hour is not None:
        hour_filter = " AND (hour IS NULL OR hour >= %s)"
        params.append(since_hour)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT queue_id, metric, label, le, hour, sum(n), sum(seconds) FROM {TALLY} "
            f"WHERE metric IN ({marks}){hour_filter} "
            "GROUP BY queue_id, metric, label, le, hour",
            params,
        )
        # PostgreSQL sums bigints as numeric: hand back plain ints and floats.
        return [
            (queue_id, metric, label, le, hour, int(n), float(seconds))
            for queue_id, metric, label, le, hour, n, seconds in cursor.fetchall()
            if n or seconds
        ]
