"""Claims: a reviewer's lease on a pending item, and who is looking at it.

A claim says "I am answering this": while it runs, nobody else may answer. It is a lease, not a
lock: it ends by itself REVIEWDESK_CLAIM_TTL seconds after it was taken or last renewed (an
open item page renews it), so a reviewer who walks away never blocks an item for long. Staff
may break a claim; every claim, release and break is audited. Renewals are not (one per
heartbeat would bury the log).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from reviewdesk import events
from reviewdesk.models import ItemViewer, ReviewItem
from reviewdesk.queries import inbox
from reviewdesk.services.audit import audit

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


class Conflict(Exception):
    """The request lost to someone else's action (HTTP 409); the message says what happened."""


class ClaimedByOther(Conflict):
    """Someone else holds a running claim on the item."""

    def __init__(self, item: ReviewItem) -> None:
        holder = get_user_model().objects.filter(pk=item.claim_holder()).first()
        name = holder.get_username() if holder else "another reviewer"
        until = timezone.localtime(item.claimed_until) if item.claimed_until else None
        when = f" until {until:%H:%M} {until:%Z}" if until else ""
        super().__init__(
            f"This item is claimed by {name}{when}; only they can answer it while the claim runs."
        )
        self.item = item


class NotPending(Conflict):
    """The item is decided or withdrawn: there is nothing to claim."""

    def __init__(self, item: ReviewItem) -> None:
        super().__init__(f"This item is {item.status}; there is nothing to claim.")
        self.item = item


def lease_end() -> Any:
    return timezone.now() + timedelta(seconds=settings.REVIEWDESK_CLAIM_TTL)


def _locked_item(item_id: int, user: AbstractBaseUser) -> ReviewItem:
    item = ReviewItem.objects.select_for_update(of=("self",)).get(pk=item_id)
    if not inbox.user_can_review(user, item.queue_id):
        raise PermissionDenied("You are not a reviewer of this item's queue.")
    return item


def review_item_claim(
    *, item_id: int, user: AbstractBaseUser, implicit: bool = False, actor_label: str = ""
) -> ReviewItem:
    """Take (or renew) the claim on a pending item; ClaimedByOther while someone else holds it."""
    with transaction.atomic():
        item = _locked_item(item_id, user)
        if item.status != ReviewItem.Status.PENDING:
            raise NotPending(item)
        holder = item.claim_holder()
        if holder not in (None, user.pk):
            raise ClaimedByOther(item)
        item.claimed_by = user
        item.claimed_until = lease_end()
        item.save(update_fields=["claimed_by", "claimed_until", "updated_at"])
        if holder is None:
            audit(
                "item_claimed",
                actor=user,
                actor_label=actor_label,
                thread=item.thread,
                item=item,
                implicit=implicit,
            )
            events.item_changed_on_commit(item.pk)
    return item


def review_item_claim_renew(*, item_id: int, user: AbstractBaseUser) -> bool:
    """Extend the user's own running claim (the page's heartbeat); False if they hold none."""
    now = timezone.now()
    renewed = ReviewItem.objects.filter(
        pk=item_id,
        claimed_by=user,
        claimed_until__gt=now,
        status=ReviewItem.Status.PENDING,
    ).update(claimed_until=lease_end())
    return bool(renewed)


def review_item_release(*, item_id: int, user: AbstractBaseUser) -> ReviewItem:
    """Give up one's own claim; releasing an unclaimed item is a no-op, another's a Conflict."""
    with transaction.atomic():
        item = _locked_item(item_id, user)
        holder = item.claim_holder()
        if holder is not None and holder != user.pk:
            raise ClaimedByOther(item)
        if item.claimed_by_id is not None:
            _clear(item)
            if holder == user.pk:
                audit("item_released", actor=user, thread=item.thread, item=item)
                events.item_changed_on_commit(item.pk)
    return item


def review_item_claim_break(*, item_id: int, user: AbstractBaseUser) -> ReviewItem:
    """Staff end someone else's claim (audited with whose it was)."""
    if not user.is_staff:
        raise PermissionDenied("Only staff may break a claim.")
    with transaction.atomic():
        item = _locked_item(item_id, user)
        holder = item.claim_holder()
        if holder is not None:
            previous = get_user_model().objects.filter(pk=holder).first()
            _clear(item)
            audit(
                "item_claim_broken",
                actor=user,
                thread=item.thread,
                item=item,
                holder=previous.get_username() if previous else "",
            )
            events.item_changed_on_commit(item.pk)
    return item


def _clear(item: ReviewItem) -> None:
    item.claimed_by = None
    item.claimed_until = None
    item.save(update_fields=["claimed_by", "claimed_until", "updated_at"])


# --- presence -----------------------------------------------------------------------------------


def item_viewer_seen(*, item_id: int, user: AbstractBaseUser) -> None:
    """The user's page of the item is open; others' pages are told when someone arrives."""
    _, created = ItemViewer.objects.update_or_create(
        user=user, item_id=item_id, defaults={"seen_at": timezone.now()}
    )
    if created:
        _presence_changed(item_id)


def item_viewer_left(*, item_id: int, user: AbstractBaseUser) -> None:
    deleted, _ = ItemViewer.objects.filter(user=user, item_id=item_id).delete()
    if deleted:
        _presence_changed(item_id)


def _presence_changed(item_id: int) -> None:
    thread_id = ReviewItem.objects.filter(pk=item_id).values_list("thread_id", flat=True).first()
    if thread_id is not None:
        events.thread_changed_on_commit(thread_id)
