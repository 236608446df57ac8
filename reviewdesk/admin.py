"""Admin: queues are configured here; threads, items and the audit log are read-only records.

Every model is registered, with links from rows to the desk's own pages (the thread page with
its timeline, the item page), where staff act on them through the desk's services.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from reviewdesk.models import (
    Alert,
    AlertNotice,
    AuditEvent,
    Draft,
    ItemViewer,
    OpsTally,
    Queue,
    QueueAlerting,
    ReviewItem,
    Run,
    StuckThread,
    Thread,
)


def _thread_link(thread_id: Any) -> str:
    if not thread_id:
        return ""
    url = reverse("reviewdesk:thread", args=[thread_id])
    return format_html('<a href="{}">{}</a>', url, str(thread_id)[:8])


def _item_link(item_id: Any) -> str:
    if not item_id:
        return ""
    return format_html('<a href="{}">#{}</a>', reverse("reviewdesk:item", args=[item_id]), item_id)


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "description")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}  # noqa: RUF012
    filter_horizontal = ("groups",)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the desk's services own: change them through the desk, never by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Thread)
class ThreadAdmin(ReadOnlyAdmin):
    list_display = ("id", "desk_page", "graph", "status", "queue", "started_by", "created_at")
    list_filter = ("status", "graph", "queue", "created_at")
    search_fields = ("id", "graph", "error")
    date_hierarchy = "created_at"

    @admin.display(description="history")
    def desk_page(self, obj: Thread) -> str:
        return _thread_link(obj.pk)


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "thread_page", "kind", "worker", "outcome", "finished_at")
    list_filter = ("outcome", "kind")
    search_fields = ("thread__id", "worker", "task_id")

    @admin.display(description="thread")
    def thread_page(self, obj: Run) -> str:
        return _thread_link(obj.thread_id)


@admin.register(ReviewItem)
class ReviewItemAdmin(ReadOnlyAdmin):
    list_display = (
        "id", "item_page", "thread_page", "status", "queue", "node", "answered_by", "created_at"
    )  # fmt: skip
    list_filter = ("status", "kind", "queue")
    search_fields = ("interrupt_id", "thread__id", "answered_by__username")

    @admin.display(description="page")
    def item_page(self, obj: ReviewItem) -> str:
        return _item_link(obj.pk)

    @admin.display(description="thread")
    def thread_page(self, obj: ReviewItem) -> str:
        return _thread_link(obj.thread_id)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The audit log: append-only, so no add, change or delete here, for superusers too."""

    list_display = ("created_at", "action", "actor_label", "thread_page", "item_page")
    list_filter = ("action", "actor_label", "created_at")
    search_fields = ("action", "actor_label", "thread__id")
    date_hierarchy = "created_at"
    actions = None  # no bulk "delete selected"

    @admin.display(description="thread")
    def thread_page(self, obj: AuditEvent) -> str:
        return _thread_link(obj.thread_id)

    @admin.display(description="item")
    def item_page(self, obj: AuditEvent) -> str:
        return _item_link(obj.item_id)


# --- ops -------------------------------------------------------------------------------------


@admin.register(QueueAlerting)
class QueueAlertingAdmin(admin.ModelAdmin):
    """Per-queue alert thresholds, recipients and webhook (the secret is in the environment)."""

    list_display = ("queue", "max_oldest_age", "max_pending", "max_failed", "cooldown")


@admin.register(AlertNotice)
class AlertNoticeAdmin(ReadOnlyAdmin):
    """The alert delivery log."""

    list_display = ("created_at", "alert", "state", "value", "email_status", "webhook_status")
    list_filter = ("state",)


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    """The current state of each threshold (the beat keeps it)."""

    list_display = ("queue", "kind", "firing", "value", "threshold", "changed_at", "notified")
    list_filter = ("firing", "kind", "queue")


@admin.register(OpsTally)
class OpsTallyAdmin(ReadOnlyAdmin):
    """Deltas the database triggers write (reviewdesk/tally.py)."""

    list_display = ("metric", "queue_id", "label", "le", "hour", "n", "seconds")
    list_filter = ("metric",)
    search_fields = ("label",)


@admin.register(StuckThread)
class StuckThreadAdmin(ReadOnlyAdmin):
    list_display = ("thread_page", "kind", "found_at", "seen_at")
    list_filter = ("kind",)
    search_fields = ("thread__id",)

    @admin.display(description="thread")
    def thread_page(self, obj: StuckThread) -> str:
        return _thread_link(obj.thread_id)


@admin.register(Draft)
class DraftAdmin(ReadOnlyAdmin):
    list_display = ("user", "item_page", "updated_at")
    search_fields = ("user__username",)

    @admin.display(description="item")
    def item_page(self, obj: Draft) -> str:
        return _item_link(obj.item_id)


@admin.register(ItemViewer)
class ItemViewerAdmin(ReadOnlyAdmin):
    list_display = ("user", "item_page", "seen_at")
    search_fields = ("user__username",)

    @admin.display(description="item")
    def item_page(self, obj: ItemViewer) -> str:
        return _item_link(obj.item_id)
