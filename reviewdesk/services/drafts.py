"""Drafts: what a reviewer typed into an answer form and has not sent, kept per person and item."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied

from reviewdesk.models import Draft, ReviewItem
from reviewdesk.queries import inbox
from reviewdesk.services import claims

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

# Form fields that are plumbing, not what the person typed.
_SKIP = {"csrfmiddlewaretoken", "shown", "next"}


def review_item_draft_save(*, item_id: int, user: AbstractBaseUser, data: Any) -> Draft | None:
    """Keep what the user has typed; starting to answer an unclaimed item claims it.

    The draft is saved whatever happens to the claim or the item: typed work is never lost.
    Drafts are private scratch, not decisions, so they are not audited (the claim is).
    """
    item = ReviewItem.objects.only("queue_id", "status").get(pk=item_id)
    if not inbox.user_can_review(user, item.queue_id):
        raise PermissionDenied("You are not a reviewer of this item's queue.")
    if item.status != ReviewItem.Status.PENDING:
        # Decided already (a draft request that lost the race with the answer it preceded):
        # nothing to keep; a page still holding text keeps it on screen as unsent.
        return Draft.objects.filter(user=user, item_id=item_id).first()
    # Only the answer form's own fields are kept (the request body is bounded by Django).
    from reviewdesk.payloads import conventions

    full = ReviewItem.objects.select_related("thread").get(pk=item_id)
    convention = conventions.for_item(full)
    names = set(convention.form_class(**convention.form_kwargs).fields)
    fields = {key: data.getlist(key)[:50] for key in data if key in names and key not in _SKIP}
    draft, _ = Draft.objects.update_or_create(user=user, item_id=item_id, defaults={"data": fields})
    # Starting to answer claims the item; if someone else holds it, the draft is kept anyway.
    with contextlib.suppress(claims.Conflict):
        claims.review_item_claim(item_id=item_id, user=user, implicit=True)
    return draft


def draft_of(*, item_id: int, user: AbstractBaseUser) -> Draft | None:
    return Draft.objects.filter(item_id=item_id, user=user).first()


def draft_text(draft: Draft | None) -> str:
    """A draft as plain text for the "Your unsent answer" box (labels are field names)."""
    if draft is None:
        return ""
    lines = []
    for key, values in draft.data.items():
        shown = [v for v in values if v.strip()]
        if shown:
            lines.append(f"{key}: " + "\n".join(shown))
    return "\n\n".join(lines)
