"""The ops page (staff or the "ops" group), its repairs, and /metrics for Prometheus."""

from __future__ import annotations

import hmac
import math
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from reviewdesk import tally
from reviewdesk.engine import stuck
from reviewdesk.models import Queue, Thread
from reviewdesk.queries import ops as ops_queries
from reviewdesk.services import threads as thread_services
from reviewdesk.views.threads import RETRY_NEEDS_REASON


def _ops_only(request: HttpRequest) -> None:
    if not ops_queries.user_can_ops(request.user):
        raise PermissionDenied("Staff or the ops group only.")


# --- the page ----------------------------------------------------------------------------------

CHART_W, CHART_H, BAR_GAP = 480, 120, 2


def hourly_chart(created: list[int], decided: list[int], hours: list[int]) -> dict[str, Any]:
    """Bar geometry for created vs decided per hour (server-rendered SVG, no script)."""
    top = max([*created, *decided, 1])
    slot = CHART_W / max(len(hours), 1)
    width = max(1.0, slot / 2 - BAR_GAP)
    bars = []
    for index, (hour, made, done) in enumerate(zip(hours, created, decided, strict=True)):
        x = index * slot
        made_h = CHART_H * made / top
        done_h = CHART_H * done / top
        bars.append(
            {
                "x_created": round(x + BAR_GAP / 2, 1),
                "x_decided": round(x + slot / 2, 1),
                "y_created": round(CHART_H - made_h, 1),
                "y_decided": round(CHART_H - done_h, 1),
                "h_created": round(made_h, 1),
                "h_decided": round(done_h, 1),
                "width": round(width, 1),
                "title": f"{hour % 24:02d}:00 UTC: {made} created, {done} decided",
            }
        )
    return {"bars": bars, "top": top, "width": CHART_W, "height": CHART_H}


def age_chart(histogram: list[tuple[str, int]]) -> dict[str, Any]:
    top = max([n for _label, n in histogram] + [1])
    slot = 300 / max(len(histogram), 1)
    bars = [
        {
            "x": round(i * slot + 1, 1),
            "y": round(60 - 60 * n / top, 1),
            "h": round(60 * n / top, 1),
            "w": round(slot - 2, 1),
            "label": label,
            "n": n,
        }
        for i, (label, n) in enumerate(histogram)
    ]
    return {"bars": bars, "width": 300, "height": 60}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def ops_context() -> dict[str, Any]:
    figures = ops_queries.queue_figures()
    rows = []
    for fig in figures:
        rows.append(
            {
                "fig": fig,
                "oldest": duration(fig.oldest_pending_age_s),
                "p50": duration(fig.decision_p50_s),
                "p90": duration(fig.decision_p90_s),
                "claim_p50": duration(fig.claim_p50_s),
                "claim_p90": duration(fig.claim_p90_s),
                "chart": hourly_chart(fig.created_per_hour, fig.decided_per_hour, fig.hours),
                "ages": age_chart(fig.age_histogram),
            }
        )
    machinery = ops_queries.machinery()
    for queue in machinery["broker"]:
        queue["oldest"] = duration(queue["oldest_age_s"])
    return {
        "queues": rows,
        "thread_counts": ops_queries.thread_counts(),
        "failed": ops_queries.threads_failed(),
        "long_running": ops_queries.threads_running_long(),
        "long_run": settings.REVIEWDESK_LONG_RUN,
        "stuck": ops_queries.stuck_threads(),
        "stuck_counts": ops_queries.stuck_counts(),
        "machinery": machinery,
    }


@require_GET
@vary_on_headers("HX-Request", "HX-Target")
def ops_page(request: HttpRequest) -> HttpResponse:
    """Backlog, threads, stuck threads and machinery at a glance; live over its socket."""
    _ops_only(request)
    template = "reviewdesk/ops/ops.html"
    if request.htmx and request.htmx.target == "ops-sync":
        template += "#ops-sync"
    return render(request, template, ops_context())


@require_POST
def ops_repair(request: HttpRequest, thread_id: UUID, kind: str) -> HttpResponse:
    """One-click repair of a stuck thread (the reconciler's own action), audited."""
    _ops_only(request)
    if kind not in stuck.Kind.values:
        return HttpResponse("Unknown kind of stuck thread.", status=404)
    try:
        done = stuck.stuck_repair(thread_id=str(thread_id), kind=kind, user=request.user)
    except stuck.NotStuck as exc:
        messages.info(request, f"Thread {str(thread_id)[:8]}: {exc}")
    else:
        messages.success(request, f"Thread {str(thread_id)[:8]} repaired: {done}.")
    return redirect("reviewdesk:ops")


@require_POST
def ops_retry(request: HttpRequest, thread_id: UUID) -> HttpResponse:
    """Retry a failed thread from the ops page (audited by the service, with its reason)."""
    _ops_only(request)
    reason = request.POST.get("reason", "").strip()[:2000]
    if not reason:
        messages.error(request, RETRY_NEEDS_REASON)
        return redirect("reviewdesk:ops")
    try:
        thread_services.thread_retry(thread_id=thread_id, user=request.user, reason=reason)
    except Thread.DoesNotExist:
        return HttpResponse("No such thread.", status=404)
    except ValueError as exc:
        messages.info(request, str(exc))
    else:
        messages.success(request, f"Thread {str(thread_id)[:8]} queued for a retry.")
    return redirect("reviewdesk:ops")


@require_POST
def ops_sweep(request: HttpRequest) -> HttpResponse:
    """Look for stuck threads now instead of waiting for beat's next sweep."""
    _ops_only(request)
    counts = stuck.stuck_sweep()
    messages.info(request, f"Stuck threads found: {sum(counts.values())}.")
    return redirect("reviewdesk:ops")


# --- /metrics ------------------------------------------------------------------------------------


class DeskCollector:
    """Every figure computed from the database (and Redis) at scrape time, for any process."""

    def collect(self) -> Iterator[Any]:
        slugs = dict(Queue.objects.values_list("pk", "slug"))

        def slug(queue_id: int | None) -> str:
            return slugs.get(queue_id, "") if queue_id is not None else ""

        figures = ops_queries.queue_figures(detail=False)
        items = GaugeMetricFamily(
            "reviewdesk_review_items",
            "Review items by queue and status.",
            labels=["queue", "status"],
        )
        oldest = GaugeMetricFamily(
            "reviewdesk_oldest_pending_age_seconds",
            "Age of the oldest pending item (0 when none is pending).",
            labels=["queue"],
        )
        overdue = GaugeMetricFamily(
            "reviewdesk_overdue_items",
            "Pending items older than the queue allows.",
            labels=["queue"],
        )
        claimed = GaugeMetricFamily(
            "reviewdesk_claimed_items", "Pending items under a live claim.", labels=["queue"]
        )
        ages = GaugeHistogramMetricFamily(
            "reviewdesk_pending_age_seconds", "Pending items by age.", labels=["queue"]
        )
        for fig in figures:
            for status in ("pending", "answered", "applied", "superseded"):
                items.add_metric([fig.queue.slug, status], fig.items.get(status, 0))
            for status, n in fig.items.items():
                if status not in ("pending", "answered", "applied", "superseded"):
                    items.add_metric([fig.queue.slug, status], n)
            oldest.add_metric([fig.queue.slug], fig.oldest_pending_age_s or 0.0)
            overdue.add_metric([fig.queue.slug], fig.overdue)
            claimed.add_metric([fig.queue.slug], fig.claimed)
            ages.add_metric(
                [fig.queue.slug],
                buckets=[
                    ("+Inf" if math.isinf(le) else f"{le:g}", n) for le, n in fig.age_cumulative
                ],
                gsum_value=0.0,
            )
        yield from (items, oldest, overdue, claimed, ages)

        threads = GaugeMetricFamily("reviewdesk_threads", "Threads by status.", labels=["status"])
        for status, n in ops_queries.thread_counts().items():
            threads.add_metric([status], n)
        yield threads

        for name, metric, bounds, doc, label in (
            ("reviewdesk_time_to_first_claim_seconds", "claim_s", tally.DECISION_BUCKETS,
             "From an item's creation to its first claim.", None),
            ("reviewdesk_time_to_decision_seconds", "decision_s", tally.DECISION_BUCKETS,
             "From an item's creation to its decision.", None),
            ("reviewdesk_resume_latency_seconds", "resume_s", tally.RESUME_BUCKETS,
             "From a decision to the start of the run that resumes the graph with it.", None),
            ("reviewdesk_graph_step_duration_seconds", "step_s", tally.STEP_BUCKETS,
             "Duration of one run of a graph (plan, run to the next stop, record).", "graph"),
        ):  # fmt: skip
            labels = ["graph"] if label else ["queue"]
            family = HistogramMetricFamily(name, doc, labels=labels)
            merged: dict[str, ops_queries.Histogram] = {}
            for (queue_id, tally_label), hist in ops_queries.histograms(metric, bounds).items():
                key = tally_label if label else slug(queue_id)
                if key in merged:  # the same graph in several queues: add up
                    prev = merged[key]
                    hist = ops_queries.Histogram(
                        buckets=[
                            (le, a + b)
                            for (le, a), (_le, b) in zip(prev.buckets, hist.buckets, strict=True)
                        ],
                        total=prev.total + hist.total,
                    )
                merged[key] = hist
            for key, hist in sorted(merged.items()):
                family.add_metric([key], buckets=hist.buckets, sum_value=hist.total)
            yield family

        decisions = CounterMetricFamily(
            "reviewdesk_decisions", "Decisions by queue and outcome.", labels=["queue", "outcome"]
        )
        for (queue_id, outcome), n in sorted(
            ops_queries.decisions_by_type().items(), key=lambda kv: (slug(kv[0][0]), kv[0][1])
        ):
            decisions.add_metric([slug(queue_id), outcome], n)
        yield decisions

        stuck_family = GaugeMetricFamily(
            "reviewdesk_stuck_threads", "Stuck threads the last sweep found.", labels=["kind"]
        )
        for kind, n in ops_queries.stuck_counts().items():
            stuck_family.add_metric([kind], n)
        yield stuck_family

        machinery = ops_queries.machinery()
        depth = GaugeMetricFamily(
            "reviewdesk_broker_queue_length", "Tasks waiting in a broker queue.", labels=["queue"]
        )
        waited = GaugeMetricFamily(
            "reviewdesk_broker_oldest_task_age_seconds",
            "Age of the task that has waited longest in a broker queue.",
            labels=["queue"],
        )
        for queue in machinery["broker"]:
            depth.add_metric([queue["queue"]], queue["depth"])
            waited.add_metric([queue["queue"]], queue["oldest_age_s"] or 0.0)
        workers = GaugeMetricFamily("reviewdesk_workers_online", "Celery workers online.")
        workers.add_metric([], sum(1 for w in machinery["workers"] if w["online"]))
        up = GaugeMetricFamily("reviewdesk_up", "Dependencies answering.", labels=["dependency"])
        up.add_metric(["database"], 1 if machinery["database"]["ok"] else 0)
        up.add_metric(["redis"], 1 if machinery["redis"]["ok"] else 0)
        yield from (depth, waited, workers, up)
        if machinery["websockets"] is not None:
            sockets = GaugeMetricFamily(
                "reviewdesk_websocket_connections", "Open WebSocket connections (all processes)."
            )
            sockets.add_metric([], machinery["websockets"])
            yield sockets


def metrics_allowed(request: HttpRequest) -> int:
    """200 if the request may read /metrics, else the status to refuse it with (401/403)."""
    header = request.headers.get("Authorization", "")
    token = settings.REVIEWDESK_METRICS_TOKEN
    if header:
        scheme, _, given = header.partition(" ")
        ok = (
            scheme.lower() == "bearer"
            and bool(token)
            and hmac.compare_digest(given.strip().encode(), token.encode())
        )
        return 200 if ok else 401
    if request.user.is_authenticated:
        return 200 if request.user.is_staff else 403
    return 401


@login_not_required
@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text; a bearer token (REVIEWDESK_METRICS_TOKEN) or a staff session."""
    status = metrics_allowed(request)
    if status != 200:
        response = HttpResponse("Refused.\n", status=status, content_type="text/plain")
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="reviewdesk metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeskCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
