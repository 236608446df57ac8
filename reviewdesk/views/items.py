"""A review item: what the graph asks, the reviewer's answer, claims, drafts and presence."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from reviewdesk.models import ItemViewer, ReviewItem
from reviewdesk.payloads import AnswerError, conventions
from reviewdesk.queries import history, inbox, threads
from reviewdesk.services import claims, drafts
from reviewdesk.services import items as item_services

# Decisions a deep link may propose (?decision=...): shown pre-selected, never sent by itself.
LINK_DECISIONS = {"approve", "reject", "edit", "respond", "accept", "ignore", "response"}


def _viewers(item: ReviewItem, user: Any) -> list[str]:
    """Who else has the item's page open (heard from within 2.5 heartbeats)."""
    since = timezone.now() - timedelta(seconds=settings.REVIEWDESK_HEARTBEAT * 2.5)
    return list(
        ItemViewer.objects.filter(item=item, seen_at__gte=since)
        .exclude(user=user)
        .order_by("user__username")
        .values_list("user__username", flat=True)
    )


def _form(request: HttpRequest, item: ReviewItem, convention: conventions.Convention) -> Any:
    """The answer form, filled with the user's draft, or a deep link's proposed decision."""
    form = convention.form_class(**convention.form_kwargs)
    draft = drafts.draft_of(item_id=item.pk, user=request.user)
    if draft is not None:
        form.initial = {
            name: values if _is_multi(form, name) else values[0]
            for name, values in draft.data.items()
            if values and name in form.fields
        }
    proposed = request.GET.get("decision", "")
    if proposed in LINK_DECISIONS:
        for name, field in form.fields.items():
            if (name == "decision" or name.startswith("decision_")) and proposed in dict(
                getattr(field, "choices", [])
            ):
                form.initial[name] = proposed
    return form


def _is_multi(form: Any, name: str) -> bool:
    return getattr(form.fields[name].widget, "allow_multiple_selected", False)


def _item_context(request: HttpRequest, item: ReviewItem, form: Any = None) -> dict[str, Any]:
    convention = conventions.for_item(item)
    user = request.user
    holder = item.claim_holder()
    filters = inbox.Filters.from_query(request.GET if request.method == "GET" else request.POST)
    draft = drafts.draft_of(item_id=item.pk, user=user)
    proposed = request.GET.get("decision", "") if request.method == "GET" else ""
    return {
        **threads.thread_context(item.thread),
        "item": item,
        "item_version": inbox.review_item_version(item, user=user),
        "convention": convention,
        "form": form or _form(request, item, convention),
        "can_answer": item.status == ReviewItem.Status.PENDING and holder in (None, user.pk),
        "claimed_by_me": holder == user.pk,
        "claimed_by_other": item.claimed_by if holder not in (None, user.pk) else None,
        "viewers": _viewers(item, user),
        "kind": convention.kind,
        "filters": filters,
        "filters_query": filters.query(),
        "proposed": proposed if proposed in LINK_DECISIONS else "",
        # Shown when the item was decided (or claimed) under a draft the user never sent.
        "unsent": drafts.draft_text(draft)
        if draft and item.status != ReviewItem.Status.PENDING and item.answered_by_id != user.pk
        else "",
        "heartbeat": int(settings.REVIEWDESK_HEARTBEAT),
        # Context for the decision: what people already decided in this thread.
        "earlier": item.thread.items.exclude(pk=item.pk)
        .filter(answered_at__isnull=False)
        .select_related("answered_by")
        .order_by("answered_at", "id")[:20],
    }


def _item_for(request: HttpRequest, pk: int) -> ReviewItem:
    return get_object_or_404(
        inbox.review_items_for_user(request.user).select_related("claimed_by"), pk=pk
    )


@require_GET
@vary_on_headers("HX-Request", "HX-Target")
def item_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The item page; for its #item-sync, the fragments that may have changed since it loaded."""
    item = _item_for(request, pk)
    context = _item_context(request, item)
    template = "reviewdesk/item.html"
    if request.htmx and request.htmx.target == "item-sync":
        # The answer panel comes back only when the item changed: a person may be typing in it.
        context["item_changed"] = request.GET.get("shown") != context["item_version"]
        template += "#item-sync"
    return render(request, template, context)


def _panel(
    request: HttpRequest, item: ReviewItem, *, form: Any = None, notice: str = "", status: int = 200
) -> HttpResponse:
    context = {
        **_item_context(request, item, form),
        "notice": notice,
        "status_conflict": status == 409,
    }
    template = "reviewdesk/item.html#answer-response" if request.htmx else "reviewdesk/item.html"
    return render(request, template, context, status=status)


@require_POST
def item_answer(request: HttpRequest, pk: int) -> HttpResponse:
    """Record a decision; invalid answers and lost races re-render the panel, nothing changes.

    409 when the decision lost (decided, claimed or changed elsewhere): the panel says why and
    the person's text stays on the page. With "then the next item", a decision that counted
    opens the next item of the view the reviewer came from.
    """
    item = _item_for(request, pk)
    convention = conventions.for_item(item)
    form = convention.form_class(request.POST, **convention.form_kwargs)
    status, notice = 200, ""
    if form.is_valid():
        try:
            item = item_services.review_item_answer(
                item_id=item.pk,
                reviewer=request.user,
                answer=form.cleaned_data["value"],
                shown_version=request.POST.get("shown") or None,
                via=history.login_method(request),
            )
        except AnswerError as exc:
            form.add_error(None, str(exc))
            status = 422
        except claims.Conflict as exc:
            item, notice, status = getattr(exc, "item", item), str(exc), 409
            item.refresh_from_db()
        else:
            if request.POST.get("next"):
                following = inbox.next_item(
                    request.user, inbox.Filters.from_query(request.POST), item
                )
                if following is not None:
                    return _to_next(request, following)
                # The last one: stay, and watch the thread take the answer.
                notice = "Sent. That was the last item of this view: nothing else is waiting."
            if not request.htmx and not notice:
                return redirect("reviewdesk:item", pk=item.pk)
    else:
        status = 422
    return _panel(request, item, form=form, notice=notice, status=status)


def _to_next(request: HttpRequest, following: ReviewItem) -> HttpResponse:
    """Open the next item, keeping the view the reviewer came from."""
    query = inbox.Filters.from_query(request.POST).query()
    url = reverse("reviewdesk:item", args=[following.pk]) + (f"?{query}" if query else "")
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_POST
def item_claim(request: HttpRequest, pk: int) -> HttpResponse:
    """Contract: 200 with the refreshed panel; 409 while someone else holds the claim."""
    item = _item_for(request, pk)
    try:
        item = claims.review_item_claim(item_id=item.pk, user=request.user)
    except claims.Conflict as exc:
        item.refresh_from_db()
        return _panel(request, item, notice=str(exc), status=409)
    return _panel(request, item)


@require_POST
def item_release(request: HttpRequest, pk: int) -> HttpResponse:
    """Contract: 200 with the refreshed panel; 409 while someone else holds the claim."""
    item = _item_for(request, pk)
    try:
        item = claims.review_item_release(item_id=item.pk, user=request.user)
    except claims.Conflict as exc:
        item.refresh_from_db()
        return _panel(request, item, notice=str(exc), status=409)
    return _panel(request, item)


@require_POST
def item_claim_break(request: HttpRequest, pk: int) -> HttpResponse:
    """Staff end someone else's claim (audited)."""
    if not request.user.is_staff:
        raise PermissionDenied("Only staff may break a claim.")
    item = _item_for(request, pk)
    item = claims.review_item_claim_break(item_id=item.pk, user=request.user)
    return _panel(request, item)


@require_POST
def item_heartbeat(request: HttpRequest, pk: int) -> HttpResponse:
    """The open page is still there: renew the user's own claim and their presence."""
    item = _item_for(request, pk)
    claims.review_item_claim_renew(item_id=item.pk, user=request.user)
    claims.item_viewer_seen(item_id=item.pk, user=request.user)
    return HttpResponse(status=204)


@require_POST
def item_leave(request: HttpRequest, pk: int) -> HttpResponse:
    """The page is closing (sent as a beacon): release the user's claim, drop their presence."""
    item = _item_for(request, pk)
    with contextlib.suppress(claims.Conflict):  # someone else's claim is theirs to keep
        claims.review_item_release(item_id=item.pk, user=request.user)
    claims.item_viewer_left(item_id=item.pk, user=request.user)
    return HttpResponse(status=204)


@require_POST
def item_draft(request: HttpRequest, pk: int) -> HttpResponse:
    """Save what the user has typed so far (as they type); starting to answer claims the item."""
    item = _item_for(request, pk)
    drafts.review_item_draft_save(item_id=item.pk, user=request.user, data=request.POST)
    return HttpResponse(status=204)
