"""The review queue: views, filters, keyset pages, the pending count and bulk decisions."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from reviewdesk.engine import registry
from reviewdesk.models import ReviewItem
from reviewdesk.payloads import AnswerError, approval, conventions
from reviewdesk.queries import history, inbox
from reviewdesk.services import claims
from reviewdesk.services import items as item_services
from reviewdesk.templatetags.desk import is_approval


def _approval_ids(items: list[ReviewItem]) -> set[int]:
    """Items simple enough to decide in bulk: a yes/no whose answer the desk writes itself."""
    return {
        item.pk for item in items if item.status == ReviewItem.Status.PENDING and is_approval(item)
    }


@require_GET
# The list fragment has the page's URL: without Vary a browser may show it for a back navigation.
@vary_on_headers("HX-Request", "HX-Target")
def queue(request: HttpRequest) -> HttpResponse:
    """The review queue: a view of the user's items, filtered and paged in the URL, live."""
    filters = inbox.Filters.from_query(request.GET)
    queues = inbox.queues_for_user(request.user)
    if filters.queue:  # naming a queue one may not review opens nothing
        get_object_or_404(queues, slug=filters.queue)
    page = inbox.review_items_page(
        request.user,
        filters,
        cursor=request.GET.get("after", ""),
        size=settings.REVIEWDESK_PAGE_SIZE,
    )
    context: dict[str, Any] = {
        "queues": queues,
        "selected": next((q for q in queues if q.slug == filters.queue), None),
        "filters": filters,
        "filters_query": filters.query(),
        "page": page,
        "items": page.items,
        "bulk_ids": _approval_ids(page.items) if filters.pending_view else set(),
        "views": inbox.VIEWS,
        "view_help": inbox.VIEW_HELP[filters.view],
        "sorts": inbox.SORTS,
        "ages": inbox.AGES,
        "filters_pairs": filters.pairs(),
        "graph_names": sorted(registry.graph_specs()),
        # Pushed rows are appended only where appending is right: the default view, all of it
        # on this one page; any other view refetches itself on a push.
        "live": filters.view == "queues"
        and filters.sort == "age"
        and not filters.filtered
        and page.first
        and not page.next_cursor,
    }
    template = "reviewdesk/queue.html"
    if request.htmx and request.htmx.target == "queue-items":
        template += "#queue-items"
    return render(request, template, context)


@require_GET
def pending_count(request: HttpRequest) -> HttpResponse:
    """The pending badge of the navigation (and, through desk.js, the page title)."""
    count, capped = inbox.pending_count(request.user)
    return render(
        request,
        "base.html#pending-count",
        {"pending": count, "pending_capped": capped, "pending_known": True},
    )


@require_POST
def bulk_decide(request: HttpRequest) -> HttpResponse:
    """Approve or reject several yes/no items: first a confirmation listing each, then decide.

    Only items whose convention is a plain approval qualify (the desk writes their answer); each
    decision goes through the same service as the form, so claims, permissions and "one
    decision counts" hold item by item, and each outcome is reported.
    """
    decision = request.POST.get("decision")
    if decision not in ("approve", "reject"):
        return HttpResponse("Choose approve or reject.", status=400)
    ids = [int(i) for i in request.POST.getlist("items") if i.isdigit()][:200]
    items = list(
        inbox.review_items_for_user(request.user).filter(pk__in=ids).order_by("created_at", "id")
    )
    eligible = _approval_ids(items)
    rows = [
        {"item": item, "eligible": item.pk in eligible, "answer": None, "outcome": ""}
        for item in items
    ]
    for row in rows:
        if row["eligible"]:
            schema = conventions.for_item(row["item"]).schema
            row["answer"] = approval.answer_for(schema, decision)
    if request.POST.get("confirm") == "1":
        for row in rows:
            if not row["eligible"]:
                row["outcome"] = "skipped: not a simple approval"
                continue
            try:
                item_services.review_item_answer(
                    item_id=row["item"].pk,
                    reviewer=request.user,
                    answer=row["answer"],
                    via=history.login_method(request) + " (bulk)",
                )
            except (AnswerError, claims.Conflict) as exc:
                row["outcome"] = f"not decided: {exc}"
            else:
                row["outcome"] = "approved" if decision == "approve" else "rejected"
    context = {
        "rows": rows,
        "decision": decision,
        "confirmed": request.POST.get("confirm") == "1",
        "filters_query": inbox.Filters.from_query(request.POST).query(),
    }
    return render(request, "reviewdesk/bulk.html", context)
