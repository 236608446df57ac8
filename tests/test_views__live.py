"""The fragments live pages fetch on every (re)connect and every hint, and pages of odd threads.

Thread and item pages are never pushed HTML: a hint makes them GET their own fragments (the page's
URL, with HX-Target naming the page's sync element), so those requests carry the same login and
permission checks as the pages. Every page must render, whatever state its thread is in.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import uuid4

import pytest
from django.test import Client

from reviewdesk.engine import registry, runs
from reviewdesk.models import ReviewItem, Thread
from reviewdesk.services import items as item_services
from tests.factories import (
    GroupFactory,
    QueueFactory,
    ReviewItemFactory,
    ThreadFactory,
    UserFactory,
)
from tests.support import corrupt_checkpoints, pending, start
from tests.test_views import ESCAPED, XSS, assert_escaped, login, page

THREAD_SYNC = {"HX-Request": "true", "HX-Target": "thread-sync"}
ITEM_SYNC = {"HX-Request": "true", "HX-Target": "item-sync"}


@pytest.fixture(autouse=True)
def _test_settings(settings: Any) -> None:
    """The test client's host, and a fast password hasher for the factories' users."""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def asked(graph: str, staff: Any) -> ReviewItem:
    return pending(start(graph, registry.graph_specs()[graph].example_input, staff))[0]


def shown_version(html: str) -> str:
    """What the item page says its answer panel shows (sent back by #item-sync)."""
    match = re.search(
        r'<input type="hidden" id="item-shown" name="shown" value="([0-9a-f]+)">', html
    )
    assert match, "no #item-shown on the page"
    return match.group(1)


def item_sync(client: Client, item: ReviewItem, shown: str) -> str:
    response = client.get(f"/items/{item.pk}/", {"shown": shown}, headers=ITEM_SYNC)
    assert response.status_code == 200
    return response.content.decode()


def failed_thread(staff: Any, reviewer: Any) -> Thread:
    """A real thread whose node refused its answer: failed, with an error and a traceback."""
    thread = start("brittle", {}, staff)
    [item] = pending(thread)
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer="boom")
    assert runs.thread_advance(thread_id=thread.pk) == "failed"
    thread.refresh_from_db()
    return thread


# --- the thread page's fragments ------------------------------------------------------------------


def test_thread_sync_returns_every_fragment_of_the_page_out_of_band(
    client: Client, staff: Any
) -> None:
    thread = start("age", {"name": "Ada"}, staff)
    [item] = pending(thread)
    response = login(client, staff).get(f"/threads/{thread.pk}/", headers=THREAD_SYNC)
    html = response.content.decode()
    assert response.status_code == 200
    assert '<div id="thread-progress" class="thread-progress" hx-swap-oob="true">' in html
    assert '<div id="thread-state" hx-disable hx-swap-oob="true">' in html
    assert '<div id="thread-items" hx-swap-oob="true">' in html
    assert '<span class="badge thread-status status-interrupted">Interrupted</span>' in html
    assert "Next: ask_age" in html
    assert f'<a href="/items/{item.pk}/">{item.pk}</a>' in html
    for chrome in ("<html", "<header", "<h1", "ws-connect", 'id="thread-sync"'):
        assert chrome not in html
    # The fragment shares the page's URL: caches must tell them apart.
    assert {"HX-Request", "HX-Target"} <= {v.strip() for v in response["Vary"].split(",")}


def test_the_thread_page_fetches_its_fragments_on_connect_and_on_hints(
    client: Client, staff: Any
) -> None:
    thread = start("age", {"name": "Ada"}, staff)
    html = login(client, staff).get(f"/threads/{thread.pk}/").content.decode()
    sync = re.search(r'<div id="thread-sync" hidden ([^>]*)>', html)
    assert sync is not None
    attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', sync.group(1)))
    assert attributes["hx-get"] == f"/threads/{thread.pk}/"
    assert attributes["hx-swap"] == "none"
    triggers = {t.strip() for t in attributes["hx-trigger"].split(",")}
    assert {"desk:resync from:body", "desk:changed from:body"} <= triggers


def test_the_items_table_follows_the_items(client: Client, staff: Any, reviewer: Any) -> None:
    thread = start("parallel_approval", registry.graph_specs()["parallel_approval"].example_input)
    legal, brand = pending(thread)
    login(client, staff)
    html = client.get(f"/threads/{thread.pk}/", headers=THREAD_SYNC).content.decode()
    assert html.count('<span class="badge status-pending">Pending</span>') == 4  # table + open

    item_services.review_item_answer(item_id=legal.pk, reviewer=reviewer, answer={"approved": True})
    html = client.get(f"/threads/{thread.pk}/", headers=THREAD_SYNC).content.decode()
    row = re.search(rf"<tr id=\"thread-item-{legal.pk}\">.*?</tr>", html, re.DOTALL)
    assert row and "status-answered" in row.group(0) and "<td>rita</td>" in row.group(0)

    item_services.review_item_answer(item_id=brand.pk, reviewer=reviewer, answer={"approved": True})
    runs.thread_advance(thread_id=thread.pk)
    html = client.get(f"/threads/{thread.pk}/", headers=THREAD_SYNC).content.decode()
    assert html.count('<span class="badge status-applied">Applied</span>') == 2
    assert '<span class="badge thread-status status-completed">Completed</span>' in html


def test_thread_fragments_need_login_and_permission(
    client: Client, staff: Any, reviewer: Any, outsider: Any
) -> None:
    thread = start("age", {"name": "Ada"}, staff)
    url = f"/threads/{thread.pk}/"
    anonymous = client.get(url, headers=THREAD_SYNC)
    assert anonymous["HX-Redirect"] == f"/accounts/login/?next={url}"
    assert b"thread-progress" not in anonymous.content
    assert login(client, outsider).get(url, headers=THREAD_SYNC).status_code == 403
    lawyers = GroupFactory(name="lawyers")
    QueueFactory(slug="legal", name="Legal", groups=[lawyers])
    lawyer = UserFactory(username="larry")
    lawyer.groups.add(lawyers)  # a reviewer, of another queue
    assert login(client, lawyer).get(url, headers=THREAD_SYNC).status_code == 403
    assert login(client, reviewer).get(url, headers=THREAD_SYNC).status_code == 200
    assert login(client, staff).get(f"/threads/{uuid4()}/", headers=THREAD_SYNC).status_code == 404


def test_thread_fragments_escape_untrusted_values(client: Client, staff: Any) -> None:
    thread = ThreadFactory(input={XSS: XSS}, status=Thread.Status.FAILED, error=XSS, traceback=XSS)
    ReviewItemFactory(thread=thread, value={XSS: XSS}, answer={XSS: XSS})
    response = login(client, staff).get(f"/threads/{thread.pk}/", headers=THREAD_SYNC)
    assert response.status_code == 200
    assert_escaped(response.content.decode(), ESCAPED[:2])
    assert page(response).live_texts("alert(1)") == []


# --- the item page's fragments --------------------------------------------------------------------


def test_item_sync_leaves_an_unchanged_answer_form_alone(
    client: Client, reviewer: Any, staff: Any
) -> None:
    """A person may be typing in it: an unchanged pending item's panel never comes back."""
    item = asked("age", staff)
    login(client, reviewer)
    shown = shown_version(client.get(f"/items/{item.pk}/").content.decode())
    html = item_sync(client, item, shown)
    assert 'id="item-live"' not in html
    assert "answer-form" not in html and "csrfmiddlewaretoken" not in html
    # The thread's fragments always come back.
    assert '<div id="thread-progress" class="thread-progress" hx-swap-oob="true">' in html
    assert '<div id="thread-state" hx-disable hx-swap-oob="true">' in html
    assert "<html" not in html


def test_item_sync_replaces_the_form_when_someone_else_answers_then_shows_applied(
    client: Client, reviewer: Any, other_reviewer: Any, staff: Any
) -> None:
    item = asked("age", staff)
    login(client, reviewer)
    shown = shown_version(client.get(f"/items/{item.pk}/").content.decode())

    item_services.review_item_answer(item_id=item.pk, reviewer=other_reviewer, answer="42")
    html = item_sync(client, item, shown)
    assert '<div id="item-live" hx-swap-oob="true">' in html
    assert "answer-form" not in html and "Submit answer" not in html
    assert '<span class="badge status-answered">Answered</span>' in html
    assert "by oscar at" in html
    assert '<span class="badge thread-status status-queued">Queued</span>' in html
    answered = shown_version(html)
    assert answered != shown
    assert 'id="item-live"' not in item_sync(client, item, answered)

    # The worker applies the answer and the thread completes: the badge says so (not Answered).
    runs.thread_advance(thread_id=item.thread_id)
    html = item_sync(client, item, answered)
    assert '<span class="badge status-applied">Applied</span>' in html
    assert '<span class="badge thread-status status-completed">Completed</span>' in html
    assert "status-answered" not in html
    # And so does the page itself.
    html = client.get(f"/items/{item.pk}/").content.decode()
    assert '<span class="badge status-applied">Applied</span>' in html


def test_item_sync_shows_a_withdrawn_item(client: Client, reviewer: Any) -> None:
    item = ReviewItemFactory(status=ReviewItem.Status.SUPERSEDED)
    html = item_sync(login(client, reviewer), item, "what the page showed before")
    assert '<span class="badge status-superseded">Superseded</span>' in html
    assert "Submit answer" not in html


def test_item_fragments_need_login_and_a_queue_of_the_item(
    client: Client, reviewer: Any, outsider: Any, staff: Any
) -> None:
    item = asked("age", staff)
    url = f"/items/{item.pk}/"
    anonymous = client.get(url, {"shown": "x"}, headers=ITEM_SYNC)
    assert anonymous["HX-Redirect"].startswith("/accounts/login/?next=")
    assert login(client, outsider).get(url, {"shown": "x"}, headers=ITEM_SYNC).status_code == 404
    legal = QueueFactory(slug="legal", name="Legal", groups=[GroupFactory(name="lawyers")])
    other = ReviewItemFactory(thread=ThreadFactory(queue=legal))
    login(client, reviewer)
    assert client.get(f"/items/{other.pk}/", headers=ITEM_SYNC).status_code == 404
    assert client.get(url, {"shown": "x"}, headers=ITEM_SYNC).status_code == 200


def test_the_answer_form_is_marked_when_it_holds_a_refused_answer(
    client: Client, reviewer: Any, staff: Any
) -> None:
    """desk.js keeps a bound form's text (what the person typed) if the item is decided under it."""
    item = asked("age", staff)
    login(client, reviewer)
    fresh = client.get(f"/items/{item.pk}/").content.decode()
    assert '<form id="answer-form" class="kind-question" method="post"' in fresh
    refused = client.post(
        f"/items/{item.pk}/answer/",
        {"mode": "json", "answer": "{oops"},
        headers={"HX-Request": "true", "HX-Target": "answer-panel"},
    )
    assert refused.status_code == 422
    assert (
        '<form id="answer-form" class="kind-question" data-bound method="post"'
        in refused.content.decode()
    )
    assert shown_version(refused.content.decode()) == shown_version(fresh)


# --- threads whose state cannot be read, failed threads ---------------------------------------


def test_a_failed_thread_shows_its_error_everywhere_and_retry_to_staff(
    client: Client, staff: Any, reviewer: Any
) -> None:
    thread = failed_thread(staff, reviewer)
    [item] = thread.items.all()
    error = "ValueError: the node refused the answer &#x27;boom&#x27;"
    for user, retry in ((staff, True), (reviewer, False)):
        login(client, user)
        responses = [
            client.get(f"/threads/{thread.pk}/"),
            client.get(f"/threads/{thread.pk}/", headers=THREAD_SYNC),
            client.get(f"/items/{item.pk}/"),
            client.get(f"/items/{item.pk}/", {"shown": "x"}, headers=ITEM_SYNC),
        ]
        for response in responses:
            html = response.content.decode()
            assert response.status_code == 200
            assert '<span class="badge thread-status status-failed">Failed</span>' in html
            assert f'<p class="error" hx-disable>{error}</p>' in html
            assert ("Retry the thread" in html) is retry
            assert ('<details class="traceback" hx-disable>' in html) is retry
            assert ("Traceback (most recent call last)" in html) is retry
            if retry:
                assert f'action="/threads/{thread.pk}/retry/"' in html
                assert 'name="csrfmiddlewaretoken"' in html


@pytest.mark.parametrize("failed", [False, True], ids=["interrupted", "failed"])
def test_a_thread_whose_checkpoint_cannot_be_read_still_shows_its_pages(
    client: Client, staff: Any, reviewer: Any, failed: bool
) -> None:
    if failed:
        thread = failed_thread(staff, reviewer)
    else:
        thread = start("chatbot", registry.graph_specs()["chatbot"].example_input, staff)
    item = thread.items.first()
    assert item is not None
    corrupt_checkpoints(thread)
    with pytest.raises(NotImplementedError):  # the read really fails
        registry.graph_get(thread.graph).get_state(thread.langgraph_config)

    for user in (staff, reviewer):
        login(client, user)
        responses = [
            client.get(f"/threads/{thread.pk}/"),
            client.get(f"/threads/{thread.pk}/", headers=THREAD_SYNC),
            client.get(f"/items/{item.pk}/"),
            client.get(f"/items/{item.pk}/", {"shown": "x"}, headers=ITEM_SYNC),
        ]
        for response in responses:
            html = response.content.decode()
            assert response.status_code == 200
            assert (
                '<p class="error state-unavailable">'
                "State unavailable: the checkpointer could not read it.</p>"
            ) in html
            # Why, in detail, for staff only (it may name databases or hosts).
            detail = "NotImplementedError: Unknown serialization type: bogus"
            assert (detail in html) is user.is_staff
            assert ("the run failed." in html) is failed
            assert ("Retry the thread" in html) is (failed and user.is_staff)


def test_a_thread_of_a_graph_no_longer_registered_still_shows_its_pages(
    client: Client, staff: Any, reviewer: Any
) -> None:
    thread = ThreadFactory(
        graph="retired_graph",
        status=Thread.Status.FAILED,
        error="The graph 'retired_graph' is no longer registered.",
    )
    item = ReviewItemFactory(thread=thread, status=ReviewItem.Status.SUPERSEDED)
    unavailable = "State unavailable: the graph &#x27;retired_graph&#x27; is no longer registered."
    for user in (staff, reviewer):
        login(client, user)
        for url, headers in (
            (f"/threads/{thread.pk}/", {}),
            (f"/threads/{thread.pk}/", THREAD_SYNC),
            (f"/items/{item.pk}/", {}),
            (f"/items/{item.pk}/", ITEM_SYNC),
        ):
            response = client.get(url, headers=headers)
            html = response.content.decode()
            assert response.status_code == 200, url
            assert unavailable in html
            assert "The graph &#x27;retired_graph&#x27; is no longer registered." in html
            assert ("Retry the thread" in html) is user.is_staff
