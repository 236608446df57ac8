"""The append-only audit log: every action by every actor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reviewdesk.models import AuditEvent, ReviewItem, Thread
from reviewdesk.payloads import to_storable

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def audit(
    action: str,
    *,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    thread: Thread | None = None,
    item: ReviewItem | None = None,
    **data: Any,
) -> AuditEvent:
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_label=actor_label or (actor.get_username() if actor else "system"),
        thread=thread,
        item=item,
        data=to_storable(data),
    )


def audit_row(
    action: str,
    *,
    actor_label: str,
    thread: Thread | None = None,
    item: ReviewItem | None = None,
    **data: Any,
) -> AuditEvent:
    """An unsaved audit record, for writers that insert several at once (``bulk_create``)."""
    return AuditEvent(
        action=action, actor_label=actor_label, thread=thread, item=item, data=to_storable(data)
    )
