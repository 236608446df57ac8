"""A thread's history: the timeline (page and command agree), decision records, the thread
list, exports, the read-only audit log in admin, and who may see any of it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from reviewdesk.engine import runs
from reviewdesk.models import AuditEvent, ReviewItem, Thread
from reviewdesk.queries import history
from reviewdesk.services import items as item_services
from tests.factories import UserFactory
from tests.support import pending, start


@pytest.fixture(autouse=True)
def _test_settings(settings: Any) -> None:
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def decide(client: Client, item: ReviewItem, value: str) -> Thread:
    """Answer through the item page, as a reviewer does, then run the thread as the worker."""
    response = client.post(f"/items/{item.pk}/answer/", {"mode": "text", "answer": value})
    assert response.status_code in (200, 302), response.content[:500]
    runs.thread_advance(thread_id=item.thread_id)
    return Thread.objects.get(pk=item.thread_id)


@pytest.fixture
def surveyed(staff: Any, reviewer: Any, client: Client) -> Thread:
    """A survey thread with three decisions by rita, run to completion."""
    thread = start("survey", {"who": "visitor"}, staff)
    login(client, reviewer)
    for value in ("Ada", "green", "yes"):
        thread = decide(client, pending(thread)[0], value)
    assert thread.status == Thread.Status.COMPLETED, thread.error
    client.logout()
    return thread


def command_history(thread: Thread) -> dict[str, Any]:
    out = StringIO()
    call_command("threadhistory", str(thread.pk), stdout=out)
    return json.loads(out.getvalue())


def test_history_of_three_decisions_shows_every_step_and_decision_in_order(
    surveyed: Thread,
) -> None:
    printed = command_history(surveyed)
    assert printed["thread"] == str(surveyed.pk) and printed["status"] == "completed"
    timeline = printed["timeline"]

    moments = [datetime.fromisoformat(e["at"]) for e in timeline]
    assert moments == sorted(moments)
    assert all(m.utcoffset().total_seconds() == 0 for m in moments)  # UTC

    steps = [e["node"] for e in timeline if e["kind"] == "step"]
    assert steps == ["(input)", "__start__", "ask_name", "ask_colour", "ask_confirm", "summarise"]
    decisions = [e for e in timeline if e["kind"] in ("asked", "answered", "applied")]
    assert [e["kind"] for e in decisions] == ["asked", "answered", "applied"] * 3
    answers = [e for e in decisions if e["kind"] == "answered"]
    assert [(e["by"], e["answer"]) for e in answers] == [
        ("rita", "Ada"),
        ("rita", "green"),
        ("rita", "yes"),
    ]
    # Each question, its answer and the step that consumed it, in that order; the step says
    # who caused it (the resume carried the reviewer into the checkpoint's metadata).
    for node, answer in zip(["ask_name", "ask_colour", "ask_confirm"], answers, strict=True):
        asked = next(e for e in timeline if e["kind"] == "asked" and e["node"] == node)
        step = next(e for e in timeline if e["kind"] == "step" and e["node"] == node)
        assert asked["item"] == answer["item"]
        assert timeline.index(asked) < timeline.index(answer) < timeline.index(step)
        assert step["by"] == "rita" and step["writes"][node]
        item = ReviewItem.objects.get(pk=asked["item"])
        assert asked["interrupt_id"] == item.interrupt_id
        # The checkpoint where the question was pending: the one the asking node ran from.
        assert asked["checkpoint_id"] == step["parent_checkpoint_id"]
    assert timeline[0]["kind"] in ("started", "step")
    assert timeline[-1]["kind"] == "completed"
    assert {"started", "completed"} <= {e["kind"] for e in timeline}


def test_page_and_command_show_the_same_entries(
    surveyed: Thread, staff: Any, client: Client
) -> None:
    printed = command_history(surveyed)["timeline"]
    html = login(client, staff).get(f"/threads/{surveyed.pk}/").content.decode()
    shown = re.findall(
        r'<li class="entry kind-[a-z_]+" data-kind="([a-z_]+)" data-at="([^"]+)"', html
    )
    assert shown == [(e["kind"], e["at"]) for e in printed]
    for entry in printed:
        if entry["kind"] == "step":
            assert f'data-checkpoint="{entry["checkpoint_id"]}"' in html
    # The same rows through the live sync fragment.
    sync = client.get(
        f"/threads/{surveyed.pk}/", headers={"HX-Request": "true", "HX-Target": "thread-sync"}
    ).content.decode()
    assert 'id="thread-timeline" hx-swap-oob="true"' in sync
    assert len(re.findall(r'data-kind="', sync)) == len(printed)


def test_each_decision_records_who_when_how_and_a_hash_of_what_it_answered(
    surveyed: Thread,
) -> None:
    answered = AuditEvent.objects.filter(thread=surveyed, action="item_answered")
    assert answered.count() == 3
    for event in answered:
        item = event.item
        assert event.actor.username == "rita" and item.answered_at is not None
        assert item.answered_via.startswith("web session ") and "ModelBackend" in item.answered_via
        assert event.data["via"] == item.answered_via
        assert (
            event.data["payload_hash"]
            == item.payload_hash
            == item_services.payload_hash(item.value)
        )
    entry = next(e for e in history.thread_timeline(surveyed) if e["kind"] == "answered")
    assert entry["payload_changed"] is False

    # The payload later differs (the node built another question on re-run): shown.
    first = answered.first().item
    ReviewItem.objects.filter(pk=first.pk).update(value="Another question?")
    entry = next(
        e
        for e in history.thread_timeline(surveyed)
        if e["kind"] == "answered" and e["item"] == first.pk
    )
    assert entry["payload_changed"] is True


def test_state_at_a_step_diffs_against_the_step_before(
    surveyed: Thread, staff: Any, client: Client
) -> None:
    step = next(
        e
        for e in history.thread_timeline(surveyed)
        if e["kind"] == "step" and e["node"] == "ask_colour"
    )
    state = history.thread_state_at(surveyed, step["checkpoint_id"])
    assert state["diff"] == [{"op": "add", "path": "/colour", "value": "green"}]
    html = login(client, staff).get(f"/threads/{surveyed.pk}/?checkpoint={step['checkpoint_id']}")
    page = html.content.decode()
    assert '<tr class="op-add"><td>add</td><td><code>/colour</code></td>' in page
    assert history.thread_state_at(surveyed, "not-a-checkpoint") is None


def test_graph_values_are_escaped_on_the_timeline(
    staff: Any, reviewer: Any, client: Client
) -> None:
    thread = start("survey", {}, staff)
    evil = "<script>alert(1)</script>"
    item_services.review_item_answer(item_id=pending(thread)[0].pk, reviewer=reviewer, answer=evil)
    runs.thread_advance(thread_id=thread.pk)
    html = login(client, staff).get(f"/threads/{thread.pk}/?view=full").content.decode()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_export_json_and_audit_csv(surveyed: Thread, staff: Any, client: Client) -> None:
    login(client, staff)
    exported = client.get(f"/threads/{surveyed.pk}/export/")
    assert exported["Content-Disposition"].startswith("attachment;")
    data = json.loads(exported.content)
    assert data["timeline"] == command_history(surveyed)["timeline"]
    assert len(data["states"]) == len([e for e in data["timeline"] if e["kind"] == "step"])
    assert [i["answer"] for i in data["items"]] == ["Ada", "green", "yes"]

    today = datetime.now(UTC).date().isoformat()
    response = client.get(f"/audit/export/?since={today}&until={today}")
    assert response.streaming
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["at", "action", "actor", "thread", "item", "data"]
    assert len(rows) - 1 == AuditEvent.objects.count()
    assert ["item_answered", "rita"] in [r[1:3] for r in rows]
    response = client.get("/audit/export/?since=1999-01-01&until=1999-01-02")
    assert len(list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))) == 1


# --- the thread list --------------------------------------------------------------------------


def test_thread_list_filters_counts_and_keyset_pages(
    staff: Any, reviewer: Any, client: Client
) -> None:
    other = UserFactory(username="sam", is_staff=True)
    for n in range(5):
        start("survey", {"n": n, "tag": "needle" if n == 3 else "hay"}, staff)
    start("brittle", {}, other)
    login(client, staff)

    page = client.get("/threads/").content.decode()
    assert page.count('id="thread-row-') == 6
    assert 'data-status="interrupted">interrupted <span class="count">6</span>' in page

    assert client.get("/threads/?graph=brittle").content.decode().count("thread-row-") == 1
    assert client.get("/threads/?started_by=sam").content.decode().count("thread-row-") == 1
    assert client.get("/threads/?text=needle").content.decode().count("thread-row-") == 1
    assert client.get("/threads/?status=completed").content.decode().count("thread-row-") == 0
    assert client.get("/threads/?since=2999-01-01").content.decode().count("thread-row-") == 0

    # Keyset pages: every thread exactly once, newest first, whatever the page size.
    filters = history.ThreadFilters()
    seen, after = [], ""
    while True:
        rows, after = history.thread_list(filters, after=after, size=2)
        seen += rows
        if not after:
            break
    assert [t.pk for t in seen] == list(
        Thread.objects.order_by("-created_at", "-id").values_list("pk", flat=True)
    )
    oldest = history.thread_list(history.ThreadFilters(sort="oldest"), size=1)[0]
    assert oldest[0].pk == seen[-1].pk


# --- permissions --------------------------------------------------------------------------------


def test_reviewers_never_see_the_thread_list_nor_act(
    surveyed: Thread, reviewer: Any, client: Client
) -> None:
    login(client, reviewer)
    assert client.get("/threads/").status_code == 403
    assert client.get(f"/threads/{surveyed.pk}/export/").status_code == 403
    assert client.get("/audit/export/").status_code == 403
    for action in ("replay", "edit", "cancel", "retry", "delete"):
        response = client.post(f"/threads/{surveyed.pk}/history/{action}/", {"reason": "x"})
        assert response.status_code == 403
    # A reviewer may see a thread with items in their queues, but not its history.
    html = client.get(f"/threads/{surveyed.pk}/").content.decode()
    assert 'id="thread-timeline"' not in html and "Replay" not in html
    assert not AuditEvent.objects.filter(action__in=["thread_replayed", "thread_cancelled"])


def test_a_reviewer_cannot_see_a_thread_outside_their_queues(
    staff: Any, outsider: Any, client: Client
) -> None:
    thread = start("survey", {}, staff)
    assert login(client, outsider).get(f"/threads/{thread.pk}/").status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(surveyed: Thread) -> None:
    client = Client()
    for url in ("/threads/", f"/threads/{surveyed.pk}/", f"/threads/{surveyed.pk}/export/"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    response = client.post(f"/threads/{surveyed.pk}/history/cancel/", {"reason": "x"})
    assert response.status_code in (302, 403)
    assert Thread.objects.get(pk=surveyed.pk).status == Thread.Status.COMPLETED


def test_actions_need_csrf(surveyed: Thread, staff: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    response = client.post(f"/threads/{surveyed.pk}/history/cancel/", {"reason": "x"})
    assert response.status_code == 403
    html = client.get(f"/threads/{surveyed.pk}/").content.decode()
    forms = re.findall(r'<form method="post" action="[^"]*/history/[a-z]+/"[^>]*>(.{0,200})', html)
    assert forms and all("csrfmiddlewaretoken" in form for form in forms)


def test_staff_replay_through_the_page(
    surveyed: Thread, staff: Any, reviewer: Any, client: Client
) -> None:
    asked = next(e for e in history.thread_timeline(surveyed) if e["kind"] == "asked")
    login(client, staff)
    refused = client.post(
        f"/threads/{surveyed.pk}/history/replay/", {"checkpoint": asked["checkpoint_id"]}
    )
    assert refused.status_code == 302
    assert "A reason is required" in client.get(f"/threads/{surveyed.pk}/").content.decode()
    response = client.post(
        f"/threads/{surveyed.pk}/history/replay/",
        {"checkpoint": asked["checkpoint_id"], "reason": "ask the name again"},
    )
    assert response.status_code == 302
    runs.thread_advance(thread_id=surveyed.pk)
    [again] = pending(surveyed)
    assert again.repeats_id == asked["item"]


# --- Django admin ---------------------------------------------------------------------------------


def test_the_audit_log_cannot_be_changed_through_admin(surveyed: Thread, client: Client) -> None:
    boss = UserFactory(username="boss", is_staff=True, is_superuser=True)
    login(client, boss)
    event = AuditEvent.objects.filter(thread=surveyed).first()
    base = "/admin/reviewdesk/auditevent/"
    assert client.get(base).status_code == 200
    assert client.get(f"{base}add/").status_code == 403
    assert client.post(f"{base}add/", {"action": "forged"}).status_code == 403
    assert client.post(f"{base}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(
        base, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"}
    ).status_code in (200, 302, 403)
    page = client.get(f"{base}{event.pk}/change/").content.decode()
    assert 'name="_save"' not in page  # view only
    client.post(f"{base}{event.pk}/change/", {"action": "forged"})
    event.refresh_from_db()
    assert event.action != "forged"
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    # Every model of the desk is registered, with links to the desk's pages.
    from django.apps import apps
    from django.contrib import admin

    for model in apps.get_app_config("reviewdesk").get_models():
        assert admin.site.is_registered(model), model
    threads = client.get("/admin/reviewdesk/thread/").content.decode()
    assert f'href="/threads/{surveyed.pk}/"' in threads
