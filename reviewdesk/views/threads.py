"""Threads for staff: start one, follow it, retry it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib.auth.decorators import user_passes_test
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from reviewdesk import forms
from reviewdesk.engine import registry
from reviewdesk.models import Thread
from reviewdesk.queries import threads
from reviewdesk.services import threads as thread_services

# Both Retry buttons (the thread page, the ops page) refuse an empty reason with this.
RETRY_NEEDS_REASON = "A reason is required: say why beside Retry (it goes in the audit log)."


def _staff_only(user: Any) -> bool:
    if not user.is_staff:
        raise PermissionDenied("Staff only.")
    return True


staff_required = user_passes_test(_staff_only)


@staff_required
@require_http_methods(["GET", "POST"])
def thread_new(request: HttpRequest) -> HttpResponse:
    """Start a thread of any registered graph (staff)."""
    form = forms.ThreadStartForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            thread = thread_services.thread_start(
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
@vary_on_headers("HX-Request", "HX-Target")
def thread_detail(request: HttpRequest, thread_id: UUID) -> HttpResponse:
    """The thread page; for its #thread-sync, every fragment of it (swapped out of band)."""
    thread = get_object_or_404(Thread.objects.select_related("started_by"), pk=thread_id)
    if not threads.thread_can_view(request.user, thread):
        raise PermissionDenied
    from reviewdesk.views.history import thread_history_context

    context = {
        **threads.thread_context(thread),
        "items": threads.thread_items(thread),
        **thread_history_context(request, thread),
    }
    template = "reviewdesk/thread.html"
    if request.htmx and request.htmx.target == "thread-sync":
        template += "#thread-sync"
    return render(request, template, context)


@staff_required
@require_POST
def thread_retry(request: HttpRequest, thread_id: UUID) -> HttpResponse:
    """Retry a failed thread; like every action on a thread's history, it needs a reason."""
    reason = request.POST.get("reason", "").strip()[:2000]
    if not reason:
        return HttpResponse(RETRY_NEEDS_REASON, status=422)
    try:
        thread_services.thread_retry(thread_id=thread_id, user=request.user, reason=reason)
    except Thread.DoesNotExist:
        return HttpResponse("No such thread.", status=404)
    except ValueError as exc:
        return HttpResponse(str(exc), status=409)
    return redirect("reviewdesk:thread", thread_id=thread_id)
