"""Admin: queues are configured here; threads, items and the audit log are read-only records."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from reviewdesk.models import AuditEvent, Queue, ReviewItem, Thread


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ("name", "slug")
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
    list_display = ("id", "graph", "status", "queue", "started_by", "created_at", "updated_at")
    list_filter = ("status", "graph", "queue")
    search_fields = ("id", "graph", "error")


@admin.register(ReviewItem)
class ReviewItemAdmin(ReadOnlyAdmin):
    list_display = ("id", "thread", "status", "queue", "node", "answered_by", "created_at")
    list_filter = ("status", "queue")
    search_fields = ("interrupt_id", "thread__id")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "action", "actor_label", "thread", "item")
    list_filter = ("action", "actor_label")
