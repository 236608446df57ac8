"""Pages. Thin: read through queries, change through services, render one template or partial."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib.auth.decorators import user_passes_test
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from reviewdesk import forms, payloads, queries, registry, services
from reviewdesk.models import ReviewItem, Thread
from reviewdesk.payloads import AnswerError


def _staff_only(user: Any) -> bool:
    if not user.is_staff:
        raise PermissionDenied("Staff only.")
    return True


staff_required = user_passes_test(_staff_only)


@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    """The review queue: pending items of the user's queues, live."""
    queues = queries.queues_for_user(request.user)
    selected = (
        get_object_or_404(queues, slug=request.GET["queue"]) if "queue" in request.GET else None
    )
    context = {
        "queues": queues,
        "selected": selected,
        "items": queries.review_items_pending(request.user, queue=selected)[:200],
    }
    template = "reviewdesk/queue.html"
    if request.htmx and request.htmx.target == "queue-items":
        template += "#queue-items"
    return render(request, template, context)


def _item_context(item: ReviewItem, form: Any = None) -> dict[str, Any]:
    form_class = forms.answer_form_class(item.value)
    return {
        **queries.thread_context(item.thread),
        "item": item,
        "form": form or form_class(value=item.value),
        "can_answer": item.status == ReviewItem.Status.PENDING,
        "kind": str(payloads.kind_of(item.value)),
    }


@require_GET
def item_detail(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_object_or_404(queries.review_items_for_user(request.user), pk=pk)
    return render(request, "reviewdesk/item.html", _item_context(item))


@require_POST
def item_answer(request: HttpRequest, pk: int) -> HttpResponse:
    """Record a decision; invalid answers and lost races re-render the panel, nothing changes."""
    item = get_object_or_404(queries.review_items_for_user(request.user), pk=pk)
    form = forms.answer_form_class(item.value)(request.POST, value=item.value)
    status = 200
    notice = ""
    if form.is_valid():
        try:
            item = services.review_item_answer(
                item_id=item.pk, reviewer=request.user, answer=form.cleaned_data["value"]
            )
        except AnswerError as exc:
            form.add_error(None, str(exc))
            status = 422
        except services.AlreadyDecided as exc:
            item, notice, status = exc.item, str(exc), 409
        else:
            if not request.htmx:
                return redirect("reviewdesk:item", pk=item.pk)
    else:
        status = 422
    context = {**_item_context(item, form), "notice": notice}
    template = "reviewdesk/item.html#answer-panel" if request.htmx else "reviewdesk/item.html"
    return render(request, template, context, status=status)


@staff_required
@require_http_methods(["GET", "POST"])
def thread_new(request: HttpRequest) -> HttpResponse:
    """Start a thread of any registered graph (staff)."""
    form = forms.ThreadStartForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            thread = services.thread_start(
                graph=form.cleaned_data["graph"],
                input=form.cleaned_data["input"],
                user=request.user,
            )
        except (registry.UnknownGraph, ValueError) as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("reviewdesk:thread", thread_id=thread.pk)
    context = {
        "form": form,
        "specs": registry.graph_specs(),
        "threads": Thread.objects.select_related("started_by")[:50],
    }
    return render(
        request, "reviewdesk/thread_new.html", context, status=422 if form.errors else 200
    )


@require_GET
def thread_detail(request: HttpRequest, thread_id: UUID) -> HttpResponse:
    thread = get_object_or_404(Thread, pk=thread_id)
    if not queries.thread_can_view(request.user, thread):
        raise PermissionDenied
    context = {
        **queries.thread_context(thread),
        "items": thread.items.select_related("answered_by"),
    }
    return render(request, "reviewdesk/thread.html", context)


@staff_required
@require_POST
def thread_retry(request: HttpRequest, thread_id: UUID) -> HttpResponse:
    try:
        services.thread_retry(thread_id=thread_id, user=request.user)
    except Thread.DoesNotExist:
        return HttpResponse("No such thread.", status=404)
    except ValueError as exc:
        return HttpResponse(str(exc), status=409)
    return redirect("reviewdesk:thread", thread_id=thread_id)
