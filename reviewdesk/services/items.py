"""Reviewers' decisions on review items; exactly one decision counts."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from reviewdesk import events
from reviewdesk.engine import registry
from reviewdesk.models import Draft, ReviewItem, Thread
from reviewdesk.payloads import AnswerError, conventions
from reviewdesk.queries import inbox
from reviewdesk.services import claims
from reviewdesk.services.audit import audit
from reviewdesk.services.threads import enqueue_advance

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


class AlreadyDecided(claims.Conflict):
    """Someone else decided this item first; the message says who and when."""

    def __init__(self, item: ReviewItem) -> None:
        who = item.answered_by.get_username() if item.answered_by else "someone else"
        when = f" at {item.answered_at:%H:%M:%S}" if item.answered_at else ""
        if item.status == ReviewItem.Status.SUPERSEDED:
            message = "This question was withdrawn by the graph; there is nothing to answer."
        else:
            message = f"This item was already answered by {who}{when}. Your answer was not sent."
        super().__init__(message)
        self.item = item


class StaleAnswer(claims.Conflict):
    """The item changed after the reviewer's page showed it: what they saw is not what it asks."""

    def __init__(self, item: ReviewItem) -> None:
        super().__init__(
            "The question changed after your page showed it, so your answer was not sent. "
            "Read it again and answer what it asks now."
        )
        self.item = item


def review_item_answer(
    *,
    item_id: int,
    reviewer: AbstractBaseUser,
    answer: Any,
    shown_version: str | None = None,
    via: str = "",
) -> ReviewItem:
    """Record a reviewer's decision and enqueue the resume; exactly one decision counts.

    A second submission of the very decision that was recorded (a double click, a retry after
    a lost response) returns the item as it is: nothing is recorded twice. Any other answer to
    a decided item, an answer while someone else holds the claim, or one given to a question
    that changed since the reviewer's page showed it (shown_version) is a Conflict.

    ``via`` says how the reviewer was logged in (a web session, a command); with the hash of
    the payload answered it makes the decision record (issue 8: who, when, how, what).
    """
    with transaction.atomic():
        thread_id = ReviewItem.objects.values_list("thread_id", flat=True).get(pk=item_id)
        thread = Thread.objects.select_for_update().get(pk=thread_id)
        item = (
            ReviewItem.objects.select_for_update(of=("self",))
            .select_related("answered_by")
            .get(pk=item_id)
        )
        if not inbox.user_can_review(reviewer, item.queue_id):
            raise PermissionDenied("You are not a reviewer of this item's queue.")
        if item.status != ReviewItem.Status.PENDING:
            if item.answered_by_id == reviewer.pk and item.answer == answer:
                return item  # the same decision again: already counted
            raise AlreadyDecided(item)
        if item.claim_holder() not in (None, reviewer.pk):
            raise claims.ClaimedByOther(item)
        if shown_version is not None and shown_version != inbox.review_item_version(
            item, user=reviewer
        ):
            raise StaleAnswer(item)
        if thread.status not in (*Thread.ACTIVE, Thread.Status.INTERRUPTED):
            raise AnswerError(f"This thread is {thread.status}; it takes no answers now.")
        conventions.answer_check(item, answer)
        if item.kind == ReviewItem.Kind.BREAKPOINT:
            _state_update_check(thread, answer)
        item.move_to(ReviewItem.Status.ANSWERED)
        item.answer = answer
        item.answered_by = reviewer
        item.answered_at = timezone.now()
        item.payload_hash = payload_hash(item.value)
        item.answered_via = via[:300]
        item.claimed_by, item.claimed_until = None, None  # a claim ends with its decision
        item.save()
        Draft.objects.filter(item=item, user=reviewer).delete()
        # A running thread stays "running": its worker picks the answer up before it stops.
        if thread.status == Thread.Status.INTERRUPTED:
            thread.status = Thread.Status.QUEUED
            thread.save(update_fields=["status", "updated_at"])
        audit(
            "item_answered",
            actor=reviewer,
            thread=thread,
            item=item,
            answer=answer,
            payload_hash=item.payload_hash,
            via=item.answered_via,
        )
        enqueue_advance(thread.pk)
        events.item_changed_on_commit(item.pk)
        events.thread_changed_on_commit(thread.pk)
    return item


def payload_hash(value: Any) -> str:
    """SHA-256 of a payload's canonical JSON: what a decision answered, comparable later."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _state_update_check(thread: Thread, answer: Any) -> None:
    """A breakpoint's state edit may only name the graph's own state keys."""
    update = answer.get("state_update") if isinstance(answer, dict) else None
    if not update:
        return
    keys = registry.state_keys(thread.graph)
    unknown = sorted(set(update) - keys)
    if unknown:
        raise AnswerError(
            f"The state has no key {unknown[0]!r}; its keys are: {', '.join(sorted(keys))}."
        )
