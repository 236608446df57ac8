"""Thread history for staff: the thread list, the actions on a thread, and the exports."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from reviewdesk.engine import registry
from reviewdesk.models import AuditEvent, Thread
from reviewdesk.payloads import AnswerError, parse_json
from reviewdesk.queries import history
from reviewdesk.services import history as history_services
from reviewdesk.views.threads import staff_required


@staff_required
@require_GET
def thread_list(request: HttpRequest) -> HttpResponse:
    """Every thread, filtered and sorted, one keyset page at a time (staff; reviewers get 403)."""
    filters = history.ThreadFilters.from_query(request.GET)
    rows, following = history.thread_list(filters, after=request.GET.get("after", ""))
    counts = history.thread_counts(filters)
    context = {
        "filters": filters,
        "rows": rows,
        "next_query": filters.query(after=following) if following else "",
        "counts": counts,
        "total": sum(counts.values()),
        "graphs": sorted(registry.graph_specs()),
        "statuses": Thread.Status.values,
        "sorts": list(history.SORTS),
    }
    return render(request, "reviewdesk/history/threads.html", context)


ACTIONS = ("replay", "edit", "cancel", "retry", "delete")


@staff_required
@require_POST
def thread_action(request: HttpRequest, thread_id: UUID, action: str) -> HttpResponse:
    """One staff action on a thread (each with a reason, each audited by its service)."""
    if action not in ACTIONS:
        return HttpResponse("No such action.", status=404)
    thread = get_object_or_404(Thread, pk=thread_id)
    reason = request.POST.get("reason", "")
    try:
        if action == "replay":
            history_services.thread_replay(
                thread_id=thread.pk,
                checkpoint_id=request.POST.get("checkpoint", ""),
                user=request.user,
                reason=reason,
            )
            done = "Replay queued: the question pending there will be asked again."
        elif action == "edit":
            try:
                values = parse_json(request.POST.get("values", ""))
            except AnswerError as exc:
                raise history_services.Refused(f"The state edit is not valid JSON: {exc}") from None
            history_services.thread_state_edit(
                thread_id=thread.pk, values=values, user=request.user, reason=reason
            )
            done = "State edit queued: the thread continues from the edited state."
        elif action == "cancel":
            history_services.thread_cancel(thread_id=thread.pk, user=request.user, reason=reason)
            done = "Thread cancelled."
        elif action == "retry":
            history_services.thread_retry(thread_id=thread.pk, user=request.user, reason=reason)
            done = "Retry queued."
        else:
            history_services.thread_delete(
                thread_id=thread.pk,
                user=request.user,
                reason=reason,
                confirm=request.POST.get("confirm", ""),
            )
            messages.success(request, f"Thread {thread.pk} and its checkpoints were deleted.")
            return redirect("reviewdesk:threads")
    except history_services.Refused as exc:
        messages.error(request, f"Not done: {exc}")
        return redirect("reviewdesk:thread", thread_id=thread.pk)
    messages.success(request, done)
    return redirect("reviewdesk:thread", thread_id=thread.pk)


@staff_required
@require_GET
def thread_export(request: HttpRequest, thread_id: UUID) -> HttpResponse:
    """One thread's full history (timeline, states, decisions) as a JSON download."""
    thread = get_object_or_404(Thread.objects.select_related("started_by"), pk=thread_id)
    response = JsonResponse(history.thread_export(thread), json_dumps_params={"indent": 1})
    response["Content-Disposition"] = f'attachment; filename="thread-{thread.pk}.json"'
    return response


AUDIT_COLUMNS = ("at", "action", "actor", "thread", "item", "data")


@staff_required
@require_GET
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    """The audit log for a date range as CSV, streamed: a year of it never sits in memory."""
    filters = history.ThreadFilters.from_query(request.GET)  # since/until, validated
    events = AuditEvent.objects.select_related("actor").order_by("created_at", "id")
    if filters.since:
        events = events.filter(created_at__gte=history.day_start(filters.since))
    if filters.until:
        events = events.filter(created_at__lt=history.day_start(filters.until) + timedelta(days=1))

    class Echo:
        def write(self, value: str) -> str:
            return value

    def rows() -> Iterator[str]:
        writer = csv.writer(Echo())
        yield writer.writerow(AUDIT_COLUMNS)
        for event in events.iterator(chunk_size=2000):
            yield writer.writerow(
                [
                    history.iso(event.created_at),
                    event.action,
                    event.actor.get_username() if event.actor else event.actor_label,
                    event.thread_id or "",
                    event.item_id or "",
                    json.dumps(event.data, ensure_ascii=False, sort_keys=True),
                ]
            )

    name = f"audit-{filters.since or 'start'}-{filters.until or 'now'}.csv"
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def thread_history_context(request: HttpRequest, thread: Thread) -> dict[str, Any]:
    """The staff-only parts of the thread page: timeline, state at a step, action choices."""
    if not request.user.is_staff:
        return {}
    timeline = history.thread_timeline(thread)
    steps = [e for e in timeline if e["kind"] == "step"]
    chosen = request.GET.get("checkpoint", "")
    if not chosen and steps:
        chosen = steps[-1]["checkpoint_id"]
    state_at = history.thread_state_at(thread, chosen) if chosen else None
    return {
        "timeline": timeline,
        "full": request.GET.get("view") == "full",
        "state_at": state_at,
        "replay_points": [e for e in steps if e["next"]],
        "asked_points": [e for e in timeline if e["kind"] == "asked" and e.get("checkpoint_id")],
    }
