"""The workbench over HTTP: claims and their contracts, conflicts, drafts, presence, views, bulk."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from reviewdesk.models import AuditEvent, Draft, ItemViewer, ReviewItem
from reviewdesk.queries import inbox
from reviewdesk.services import claims
from reviewdesk.services import items as item_services
from tests.factories import GroupFactory, QueueFactory, ReviewItemFactory, ThreadFactory
from tests.test_views import HTMX, asked, login

APPROVAL = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}, "comment": {"type": "string"}},
    "required": ["approved"],
}


@pytest.fixture(autouse=True)
def _test_settings(settings: Any) -> None:
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def actions(item: ReviewItem) -> list[str]:
    return list(AuditEvent.objects.filter(item=item).values_list("action", flat=True))


# --- claims: the contracts ------------------------------------------------------------------------


def test_claim_and_release_answer_200_with_the_panel(client: Client, reviewer: Any) -> None:
    item = ReviewItemFactory()
    login(client, reviewer)
    response = client.post(f"/items/{item.pk}/claim/", headers=HTMX)
    assert response.status_code == 200
    html = response.content.decode().strip()
    assert html.startswith('<section id="answer-panel"')
    assert "Claimed by you" in html  # the claim bar comes along, out of band
    item.refresh_from_db()
    assert (item.claimed_by, item.claim_holder()) == (reviewer, reviewer.pk)
    assert item.claimed_until > timezone.now() + timedelta(minutes=9)
    # Claiming again renews, without a second audit record.
    assert client.post(f"/items/{item.pk}/claim/", headers=HTMX).status_code == 200
    assert actions(item) == ["item_claimed"]
    response = client.post(f"/items/{item.pk}/release/", headers=HTMX)
    assert response.status_code == 200
    item.refresh_from_db()
    assert item.claim_holder() is None
    assert actions(item) == ["item_claimed", "item_released"]


def test_someone_elses_claim_is_409_for_claim_release_and_answer(
    client: Client, reviewer: Any, other_reviewer: Any
) -> None:
    item = ReviewItemFactory()
    claims.review_item_claim(item_id=item.pk, user=other_reviewer)
    login(client, reviewer)
    for url in (f"/items/{item.pk}/claim/", f"/items/{item.pk}/release/"):
        response = client.post(url, headers=HTMX)
        assert response.status_code == 409
        assert "claimed by oscar until" in response.content.decode()
    response = client.post(f"/items/{item.pk}/answer/", {"mode": "text", "answer": "42"})
    assert response.status_code == 409
    html = response.content.decode()
    assert "This item is claimed by oscar" in html
    assert "Submit answer" not in html
    item.refresh_from_db()
    assert (item.status, item.claimed_by) == (ReviewItem.Status.PENDING, other_reviewer)
    # The page says so, and offers no way to answer.
    html = client.get(f"/items/{item.pk}/").content.decode()
    assert "Claimed by oscar" in html
    assert 'id="answer-form"' not in html


def test_claims_are_leases_and_staff_may_break_them(
    client: Client, reviewer: Any, other_reviewer: Any, staff: Any
) -> None:
    item = ReviewItemFactory()
    claims.review_item_claim(item_id=item.pk, user=other_reviewer)
    # Expired: anyone may claim.
    ReviewItem.objects.filter(pk=item.pk).update(
        claimed_until=timezone.now() - timedelta(seconds=1)
    )
    claims.review_item_claim(item_id=item.pk, user=reviewer)
    # Staff break it (audited with whose it was); reviewers may not.
    assert login(client, other_reviewer).post(f"/items/{item.pk}/break-claim/").status_code == 403
    response = login(client, staff).post(f"/items/{item.pk}/break-claim/", headers=HTMX)
    assert response.status_code == 200
    item.refresh_from_db()
    assert item.claim_holder() is None
    broken = AuditEvent.objects.get(item=item, action="item_claim_broken")
    assert (broken.actor, broken.data) == (staff, {"holder": "rita"})


def test_claim_without_csrf_is_forbidden(reviewer: Any) -> None:
    item = ReviewItemFactory()
    client = login(Client(enforce_csrf_checks=True), reviewer)
    for url in ("claim", "release", "answer", "draft", "heartbeat", "leave"):
        assert client.post(f"/items/{item.pk}/{url}/", headers=HTMX).status_code == 403
    item.refresh_from_db()
    assert item.claimed_by is None


def test_claims_need_the_items_queue(client: Client, outsider: Any) -> None:
    item = ReviewItemFactory()
    assert login(client, outsider).post(f"/items/{item.pk}/claim/").status_code == 404


# --- conflicts and idempotence --------------------------------------------------------------------


def test_the_same_decision_again_is_idempotent(client: Client, reviewer: Any, staff: Any) -> None:
    item = asked("age", staff)
    login(client, reviewer)
    data = {"mode": "text", "answer": "42"}
    first = client.post(f"/items/{item.pk}/answer/", data, headers=HTMX)
    again = client.post(f"/items/{item.pk}/answer/", data, headers=HTMX)
    assert (first.status_code, again.status_code) == (200, 200)
    assert AuditEvent.objects.filter(item=item, action="item_answered").count() == 1
    other = client.post(f"/items/{item.pk}/answer/", {"mode": "text", "answer": "43"})
    assert other.status_code == 409


def test_an_answer_to_a_question_that_changed_since_shown_is_409(
    client: Client, reviewer: Any
) -> None:
    item = ReviewItemFactory(value="Deploy?")
    login(client, reviewer)
    shown = inbox.review_item_version(item, user=reviewer)
    ReviewItem.objects.filter(pk=item.pk).update(value="Delete everything?")
    response = client.post(
        f"/items/{item.pk}/answer/", {"mode": "text", "answer": "yes", "shown": shown}
    )
    assert response.status_code == 409
    assert "The question changed after your page showed it" in response.content.decode()
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.PENDING


def test_manage_py_answer_claims_for_its_user(reviewer: Any, other_reviewer: Any) -> None:
    item = ReviewItemFactory(value="Why?")
    call_command("answer", str(item.pk), "--json", '"because"', "--user", "rita", stdout=None)
    claimed = AuditEvent.objects.get(item=item, action="item_claimed")
    assert claimed.data == {"implicit": True}
    held = ReviewItemFactory(value="Why not?")
    claims.review_item_claim(item_id=held.pk, user=other_reviewer)
    with pytest.raises(CommandError, match="claimed by oscar"):
        call_command("answer", str(held.pk), "--json", '"x"', "--user", "rita")
    # A refused answer leaves no claim of the command's user behind.
    refused = ReviewItemFactory(value="Why?", response_schema={"type": "integer"})
    with pytest.raises(CommandError, match="is not of type 'integer'"):
        call_command("answer", str(refused.pk), "--json", '"x"', "--user", "rita")
    refused.refresh_from_db()
    assert refused.claim_holder() is None


# --- drafts and presence --------------------------------------------------------------------------


def test_drafts_are_saved_claim_implicitly_and_come_back(
    client: Client, reviewer: Any, other_reviewer: Any
) -> None:
    item = ReviewItemFactory(value="Why?")
    login(client, reviewer)
    data = {"mode": "text", "answer": "Because the tests say so", "csrfmiddlewaretoken": "x"}
    assert client.post(f"/items/{item.pk}/draft/", data, headers=HTMX).status_code == 204
    draft = Draft.objects.get(item=item, user=reviewer)
    assert draft.data == {"mode": ["text"], "answer": ["Because the tests say so"]}
    item.refresh_from_db()
    assert item.claim_holder() == reviewer.pk  # starting to answer claimed it
    # Back on the page, the text is there.
    assert (
        "Because the tests say so</textarea>" in client.get(f"/items/{item.pk}/").content.decode()
    )
    # Someone else decides (staff broke the claim first): the draft shows as unsent, as text.
    claims.review_item_release(item_id=item.pk, user=reviewer)
    item_services.review_item_answer(item_id=item.pk, reviewer=other_reviewer, answer="No.")
    html = client.get(f"/items/{item.pk}/").content.decode()
    assert '<section id="unsent-answer" class="card unsent">' in html
    assert "answer: Because the tests say so" in html


def test_a_sent_answer_drops_the_draft(client: Client, reviewer: Any) -> None:
    item = ReviewItemFactory(value="Why?")
    login(client, reviewer)
    client.post(f"/items/{item.pk}/draft/", {"mode": "text", "answer": "x"})
    client.post(f"/items/{item.pk}/answer/", {"mode": "text", "answer": "x"})
    assert not Draft.objects.filter(item=item).exists()
    item.refresh_from_db()
    assert (item.status, item.claimed_by) == (ReviewItem.Status.ANSWERED, None)


def test_viewers_see_each_other_and_leaving_releases(
    client: Client, reviewer: Any, other_reviewer: Any
) -> None:
    item = ReviewItemFactory()
    other = login(Client(), other_reviewer)
    assert other.post(f"/items/{item.pk}/heartbeat/").status_code == 204
    html = login(client, reviewer).get(f"/items/{item.pk}/").content.decode()
    assert 'Also viewing: <span class="viewer">oscar</span>' in html
    client.post(f"/items/{item.pk}/claim/")
    assert client.post(f"/items/{item.pk}/heartbeat/").status_code == 204
    assert client.post(f"/items/{item.pk}/leave/").status_code == 204
    item.refresh_from_db()
    assert item.claim_holder() is None
    assert list(ItemViewer.objects.values_list("user__username", flat=True)) == ["oscar"]


def test_a_deep_link_proposes_a_decision_but_sends_nothing(client: Client, reviewer: Any) -> None:
    item = ReviewItemFactory(value="Ship?", response_schema={"type": "boolean"})
    html = login(client, reviewer).get(f"/items/{item.pk}/?decision=approve").content.decode()
    assert "This link proposes <strong>approve</strong>" in html
    assert 'class="approve proposed"' in html
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.PENDING
    assert not AuditEvent.objects.filter(item=item).exists()


# --- the queue's views ----------------------------------------------------------------------------


def rows(client: Client, query: str) -> list[int]:
    html = client.get(f"/?{query}").content.decode()
    return [int(pk) for pk in re.findall(r'<article id="item-(\d+)"', html)]


def test_views_filters_and_sorts(client: Client, reviewer: Any, other_reviewer: Any) -> None:
    now = timezone.now()
    old = ReviewItemFactory(value="Old question about apples", node="ask")
    new = ReviewItemFactory(value="New question about pears", node="other")
    ReviewItem.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=2), priority=1)
    mine = ReviewItemFactory(value="Mine")
    theirs = ReviewItemFactory(value="Theirs")
    decided = ReviewItemFactory(value="Decided")
    claims.review_item_claim(item_id=mine.pk, user=reviewer)
    claims.review_item_claim(item_id=theirs.pk, user=other_reviewer)
    item_services.review_item_answer(item_id=decided.pk, reviewer=reviewer, answer="ok")
    login(client, reviewer)
    assert rows(client, "") == [old.pk, new.pk, mine.pk]  # not the one oscar holds
    assert rows(client, "view=mine") == [mine.pk]
    assert rows(client, "view=decided") == [decided.pk]
    assert rows(client, "view=recent") == [decided.pk]
    assert rows(client, "view=all") == [decided.pk, theirs.pk, mine.pk, new.pk, old.pk]
    assert rows(client, "sort=-age") == [mine.pk, new.pk, old.pk]
    assert rows(client, "q=PEARS") == [new.pk]
    assert rows(client, "node=ask") == [old.pk]
    assert rows(client, "age=gt1d") == [old.pk]
    assert rows(client, "age=lt1h") == [new.pk, mine.pk]
    assert rows(client, "graph=age") == [old.pk, new.pk, mine.pk]
    assert rows(client, "graph=agent") == []
    ReviewItem.objects.filter(pk=new.pk).update(priority=5)
    assert rows(client, "sort=priority") == [new.pk, old.pk, mine.pk]
    # Filters stay in the links of the page (bookmarkable, shareable).
    html = client.get("/?view=mine&q=x").content.decode()
    assert 'href="?view=all&amp;q=x"' in html


def test_keyset_pages_walk_every_queue_without_gaps(
    client: Client, reviewer: Any, settings: Any
) -> None:
    settings.REVIEWDESK_PAGE_SIZE = 3
    legal = QueueFactory(slug="legal", name="Legal", groups=[GroupFactory()])
    base = timezone.now() - timedelta(hours=1)
    made = []
    for n in range(8):
        thread = ThreadFactory(queue=legal) if n % 2 else ThreadFactory()
        item = ReviewItemFactory(thread=thread, value=f"q{n}")
        # Two share a timestamp: the id breaks the tie.
        ReviewItem.objects.filter(pk=item.pk).update(
            created_at=base + timedelta(minutes=n // 2 * 2)
        )
        made.append(item.pk)
    login(client, reviewer)
    seen, url = [], "/"
    while url:
        html = client.get(url).content.decode()
        seen += [int(pk) for pk in re.findall(r'<article id="item-(\d+)"', html)]
        found = re.search(r'<a href="(\?[^"]*after=[^"]*)" rel="next">', html)
        url = "/" + found.group(1).replace("&amp;", "&") if found else ""
    assert seen == made
    assert client.get("/?after=garbage").status_code == 200


def test_pending_count_is_capped(client: Client, reviewer: Any, monkeypatch: Any) -> None:
    for _ in range(3):
        ReviewItemFactory()
    login(client, reviewer)
    html = client.get("/items/count/").content.decode()
    assert 'data-count="3"' in html
    monkeypatch.setattr(inbox, "COUNT_CAP", 2)
    html = client.get("/items/count/").content.decode()
    assert 'data-count="2+"' in html
    assert 'aria-label="2 or more pending"' in html


def test_answer_and_next_opens_the_next_item_of_the_view(client: Client, reviewer: Any) -> None:
    first = ReviewItemFactory(value="One?", node="n1")
    ReviewItemFactory(value="Other node", node="n2")
    third = ReviewItemFactory(value="Three?", node="n1")
    login(client, reviewer)
    data = {"mode": "text", "answer": "x", "next": "1", "node": "n1"}
    response = client.post(f"/items/{first.pk}/answer/", data, headers=HTMX)
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == f"/items/{third.pk}/?node=n1"
    response = client.post(f"/items/{third.pk}/answer/", data, headers=HTMX)
    assert "HX-Redirect" not in response.headers  # the last one: stay and watch it go
    assert "That was the last item of this view" in response.content.decode()


# --- bulk ---------------------------------------------------------------------------------------


def test_bulk_approve_confirms_then_decides_approvals_only(
    client: Client, reviewer: Any, other_reviewer: Any
) -> None:
    yes = [ReviewItemFactory(value=f"Ship {n}?", response_schema=APPROVAL) for n in range(2)]
    held = ReviewItemFactory(value="Ship held?", response_schema=APPROVAL)
    claims.review_item_claim(item_id=held.pk, user=other_reviewer)
    question = ReviewItemFactory(value="Why?")
    login(client, reviewer)
    html = client.get("/").content.decode()
    assert f'value="{yes[0].pk}" form="bulk-form"' in html
    assert f'value="{question.pk}" form="bulk-form"' not in html
    ids = [str(i.pk) for i in (*yes, held, question)]
    confirm = client.post("/items/bulk/", {"decision": "approve", "items": ids})
    html = confirm.content.decode()
    assert "Approve these 4 items?" in html
    assert "Ship 0?" in html and "not a simple approval: skipped" in html
    assert "{&quot;approved&quot;: true}" in html
    assert ReviewItem.objects.filter(status=ReviewItem.Status.ANSWERED).count() == 0
    done = client.post("/items/bulk/", {"decision": "approve", "items": ids, "confirm": "1"})
    html = done.content.decode()
    assert "claimed by oscar" in html
    for item in yes:
        item.refresh_from_db()
        assert (item.status, item.answer, item.answered_by) == (
            "answered",
            {"approved": True},
            reviewer,
        )
    held.refresh_from_db()
    question.refresh_from_db()
    assert (held.status, question.status) == ("pending", "pending")


def test_the_item_page_shows_the_threads_earlier_decisions(
    client: Client, reviewer: Any, staff: Any
) -> None:
    from tests.support import pending, start

    thread = start("parallel_approval", {"topic": "x"}, staff)
    legal, brand = pending(thread)
    item_services.review_item_answer(
        item_id=legal.pk, reviewer=reviewer, answer={"approved": True, "comment": "ok"}
    )
    html = login(client, reviewer).get(f"/items/{brand.pk}/").content.decode()
    assert "Earlier decisions in this thread" in html
    assert "Approve this draft for legal?" in html
    assert "by rita" in html
