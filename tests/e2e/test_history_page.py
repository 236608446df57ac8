"""An admin replays a thread from a past checkpoint on its page, in headless Chromium, against
real Daphne, a Celery worker, Redis and the database; the timeline follows live."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from reviewdesk.models import ReviewItem, Thread
from reviewdesk.queries import history
from reviewdesk.services import items as item_services
from reviewdesk.services import threads as thread_services
from tests.support import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db", "celery_worker")]

expect.set_options(timeout=15_000)


def pending_on(thread: Thread, node: str, *, exclude: int | None = None) -> ReviewItem:
    def check() -> ReviewItem | None:
        items = thread.items.filter(status=ReviewItem.Status.PENDING, node=node)
        return items.exclude(pk=exclude).first() if exclude else items.first()

    return wait_for(check, what=f"a pending question from {node}")


def test_an_admin_replays_a_thread_from_a_past_checkpoint(
    new_page: Callable[[str], Any], staff: Any, reviewer: Any
) -> None:
    thread = thread_services.thread_start(graph="survey", input={}, user=staff)
    name = pending_on(thread, "ask_name")
    item_services.review_item_answer(item_id=name.pk, reviewer=reviewer, answer="Ada")
    colour = pending_on(thread, "ask_colour")
    asked = next(
        e for e in history.thread_timeline(thread) if e["kind"] == "asked" and e["item"] == name.pk
    )

    page = new_page("stella")
    page.goto(f"/threads/{thread.pk}/")
    expect(page.locator("body.live")).to_be_visible()
    timeline = page.locator("#thread-timeline")
    expect(timeline.locator(f'.kind-answered[data-item="{name.pk}"]')).to_contain_text("rita")

    replay = page.locator("form.action-replay")
    replay.locator("select[name=checkpoint]").select_option(asked["checkpoint_id"])
    replay.get_by_label("Reason").fill("Ada gave the wrong name")
    replay.get_by_role("button", name="Replay").click()
    expect(page.locator(".history-messages")).to_contain_text("Replay queued")

    # The worker runs the replay; the page follows live: the old question is withdrawn and
    # asked again as a new item linked to the one it repeats.
    again = pending_on(thread, "ask_name", exclude=name.pk)
    assert again.repeats_id == name.pk
    expect(timeline.locator(".kind-replayed")).to_contain_text("Ada gave the wrong name")
    expect(timeline.locator(f'.kind-asked[data-item="{again.pk}"]')).to_contain_text(
        f"repeats #{name.pk}"
    )
    colour.refresh_from_db()
    assert colour.status == ReviewItem.Status.SUPERSEDED

    # Answering the repeated question continues the thread from there.
    item_services.review_item_answer(item_id=again.pk, reviewer=reviewer, answer="Grace")
    following = pending_on(thread, "ask_colour", exclude=colour.pk)
    assert following.value == "Favourite colour, Grace?"
    expect(timeline.locator(f'.kind-asked[data-item="{following.pk}"]')).to_contain_text("Grace")

    target = os.environ.get("REVIEWDESK_SCREENSHOTS")
    if target:
        page.set_viewport_size({"width": 1100, "height": 900})
        page.locator("#history").screenshot(path=str(Path(target) / "history.png"))
