"""The reviewer workbench in headless Chromium: each form kind, claims between two people,
keyboard triage, bulk approve. Real Daphne, Celery worker, Redis and database."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from reviewdesk.engine import registry
from reviewdesk.models import ReviewItem, Thread
from reviewdesk.services import threads as thread_services
from tests.support import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db", "celery_worker")]

expect.set_options(timeout=15_000)


def asked(graph: str, staff: Any, input: Any = None) -> ReviewItem:
    """Start a thread and wait for the real worker to mirror its first question."""
    spec_input = registry.graph_specs()[graph].example_input
    thread = thread_services.thread_start(
        graph=graph, input=input if input is not None else (spec_input or {}), user=staff
    )
    return wait_for(
        lambda: thread.items.filter(status=ReviewItem.Status.PENDING).order_by("id").first(),
        what=f"a question from {graph}",
    )


def finished(item: ReviewItem) -> Thread:
    def check() -> Thread | None:
        thread = Thread.objects.get(pk=item.thread_id)
        return thread if thread.status == Thread.Status.COMPLETED else None

    return wait_for(check, what=f"thread of item {item.pk} to complete")


def state(item: ReviewItem) -> dict[str, Any]:
    thread = Thread.objects.get(pk=item.thread_id)
    return registry.graph_get(thread.graph).get_state(thread.langgraph_config).values


def focused(page: Any) -> str:
    """What has focus: never <body> after a decision."""
    return page.evaluate(
        "() => { const e = document.activeElement; "
        "return e.tagName.toLowerCase() + ':' + (e.name || '') + ':' + e.textContent.trim() }"
    )


# --- a form for each kind of interrupt ----------------------------------------------------------


def test_schema_form_shows_an_inline_error_then_sends_a_typed_value(
    new_page: Callable[[str], Any], reviewer: Any, staff: Any
) -> None:
    item = asked("schema_form", staff)
    page = new_page("rita")
    page.goto(f"/items/{item.pk}/")
    expect(page.locator("body.live")).to_be_visible()
    page.get_by_label("Quantity").fill("0")
    page.locator("fieldset.choices", has_text="Gift").get_by_label("No").check()
    page.get_by_label("City").fill("Lyon")
    page.locator(".variant-choice").get_by_label("Invoice").check()
    page.get_by_label("Days").fill("30")
    page.get_by_label("then open the next item").uncheck()
    page.click("button:has-text('Submit answer')")
    error = page.locator(".field.has-error", has=page.get_by_label("Quantity"))
    expect(error).to_contain_text("0 is less than the minimum of 1")
    # Nothing was sent; what was typed is still there.
    expect(page.get_by_label("City")).to_have_value("Lyon")
    assert ReviewItem.objects.get(pk=item.pk).status == ReviewItem.Status.PENDING

    page.get_by_label("Quantity").fill("2")
    page.click("button:has-text('Submit answer')")
    expect(page.locator("#answer-panel")).to_contain_text("by rita")
    finished(item)
    assert state(item)["answer"] == {
        "quantity": 2,
        "speed": "standard",
        "gift": False,
        "address": {"city": "Lyon"},
        "payment": {"method": "invoice", "days": 30},
    }


def test_hitl_edit_with_typed_fields_and_a_diff(
    new_page: Callable[[str], Any], reviewer: Any, staff: Any
) -> None:
    item = asked("agent", staff)
    page = new_page("rita")
    page.goto(f"/items/{item.pk}/")
    expect(page.locator("body.live")).to_be_visible()
    card = page.locator("fieldset.action")
    # The arguments read as text (the body's line breaks, not "\n").
    expect(card.locator("table.args")).to_contain_text("Hi Alice,")
    expect(card.locator(".edit-fields")).to_be_hidden()
    card.get_by_label("Edit").check()
    subject = card.get_by_label("Subject")
    expect(subject).to_have_value("Confirm Friday's launch")
    subject.fill("Launch moved to Monday")
    diff = card.locator("table.diff")
    expect(diff).to_be_visible()
    expect(diff.locator("tbody tr")).to_have_count(1)
    expect(diff.locator("tbody tr")).to_contain_text("Confirm Friday's launch")
    expect(diff.locator("td.new")).to_have_text("Launch moved to Monday")
    page.get_by_label("then open the next item").uncheck()
    page.click("button:has-text('Submit answer')")
    expect(page.locator("#answer-panel table.diff")).to_contain_text("Launch moved to Monday")
    finished(item)
    assert "subject 'Launch moved to Monday'" in state(item)["messages"][-1].content


def test_an_approval_is_two_buttons_and_answer_and_next_moves_on(
    new_page: Callable[[str], Any], reviewer: Any, staff: Any
) -> None:
    legal = asked("parallel_approval", staff)
    page = new_page("rita")
    page.goto(f"/items/{legal.pk}/")
    expect(page.locator("#answer-form .approval-buttons button")).to_have_count(2)
    expect(page.locator("#answer-form textarea[name=answer]")).to_have_count(0)
    expect(page.locator(".accepts")).to_contain_text("Approve or Reject")
    page.get_by_label("Comment (optional)").fill("Fine by legal")
    page.get_by_role("button", name="Approve").click()
    # The next item (brand's) opens, its first control focused.
    page.wait_for_url(lambda url: f"/items/{legal.pk}/" not in url and "/items/" in url)
    expect(page.locator("h1")).to_contain_text("Review item")
    assert focused(page).startswith("button:decision:Approve")
    page.keyboard.press("a")
    # The last one: the page stays, with the decision and the thread moving on.
    expect(page.locator("#answer-panel")).to_contain_text("by rita")
    finished(legal)
    [published] = state(legal)["published"]
    assert published["comments"] == {"legal": "Fine by legal"}


# --- claims between two people ------------------------------------------------------------------


def test_a_claim_shows_live_to_the_other_reviewer_who_cannot_answer(
    new_page: Callable[[str], Any], reviewer: Any, other_reviewer: Any, staff: Any
) -> None:
    item = asked("age", staff)
    rita, oscar = new_page("rita"), new_page("oscar")
    for page in (rita, oscar):
        page.goto(f"/items/{item.pk}/")
        expect(page.locator("body.live")).to_be_visible()
    # Presence, live, both ways.
    expect(rita.locator(".viewers")).to_contain_text("Also viewing: oscar")
    expect(oscar.locator(".viewers")).to_contain_text("Also viewing: rita")
    rita.keyboard.press("Escape")  # leave the answer box, so "c" is a shortcut
    rita.keyboard.press("c")
    expect(rita.locator("#item-claim")).to_contain_text("Claimed by you")
    # Oscar sees it without a reload, and can no longer answer.
    expect(oscar.locator("#item-claim")).to_contain_text("Claimed by rita")
    expect(oscar.locator("#answer-form")).to_have_count(0)
    expect(oscar.locator("#answer-panel")).to_contain_text("only they can answer")
    # Rita answers; oscar's page follows.
    rita.fill("#id_answer", "42")
    rita.get_by_label("then open the next item").uncheck()
    rita.click("button:has-text('Submit answer')")
    expect(oscar.locator("#answer-panel")).to_contain_text("by rita")
    finished(item)


def test_a_claimed_item_refuses_a_stale_form_with_409(
    new_page: Callable[[str], Any], reviewer: Any, other_reviewer: Any, staff: Any
) -> None:
    """Oscar's page still shows the form (its socket is held back): his submit gets a 409."""
    from reviewdesk.services import claims

    item = asked("age", staff)
    oscar = new_page("oscar")
    oscar.route_web_socket("**/ws/thread/**", lambda ws: None)  # open, but never connected
    with oscar.expect_response(lambda r: r.request.headers.get("hx-target") == "item-sync"):
        oscar.goto(f"/items/{item.pk}/")  # and its resync on open, before rita claims
    claims.review_item_claim(item_id=item.pk, user=reviewer)
    oscar.fill("#id_answer", "17")
    oscar.click("button:has-text('Submit answer')")
    expect(oscar.locator(".notice.conflict")).to_contain_text("This item is claimed by rita")
    expect(oscar.locator("#unsent-answer textarea")).to_have_value("Answer as: Text\nAnswer:\n17")
    assert ReviewItem.objects.get(pk=item.pk).status == ReviewItem.Status.PENDING


# --- speed of triage ----------------------------------------------------------------------------


def test_keyboard_triage_of_mixed_items(
    new_page: Callable[[str], Any], reviewer: Any, staff: Any
) -> None:
    """Questions, a yes/no, a tool call and a schema form, with the keyboard alone."""
    items = [
        asked("age", staff),
        asked("yes_no", staff),
        asked("agent", staff),
        asked("age", staff),
        asked("chatbot", staff),
    ]
    page = new_page("rita")
    expect(page.locator(".item-row")).to_have_count(len(items))
    page.keyboard.press("j")
    page.keyboard.press("k")
    expect(page.locator(".item-row.selected")).to_have_attribute("id", f"item-{items[0].pk}")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/items/{items[0].pk}/")
    # 1. a question: the text box has focus; type, send, next.
    page.keyboard.type("42")
    page.keyboard.press("Control+Enter")
    page.wait_for_url(f"**/items/{items[1].pk}/")
    # 2. a yes/no: "a" approves at once.
    assert focused(page).startswith("button:decision:Approve")
    page.keyboard.press("a")
    page.wait_for_url(f"**/items/{items[2].pk}/")
    # 3. a tool call: "a" chooses Approve, Ctrl+Enter sends.
    assert focused(page).startswith("input:decision_0")
    page.keyboard.press("a")
    expect(page.locator("input[name=decision_0][value=approve]")).to_be_checked()
    page.keyboard.press("Control+Enter")
    page.wait_for_url(f"**/items/{items[3].pk}/")
    page.keyboard.type("7")
    page.keyboard.press("Control+Enter")
    page.wait_for_url(f"**/items/{items[4].pk}/")
    # 5. the chatbot's declared one-field form: type the reply.
    page.keyboard.type("Read the docs.")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#answer-panel")).to_contain_text("by rita")
    for item in items:
        finished(item)
    assert [ReviewItem.objects.get(pk=i.pk).answered_by for i in items] == [reviewer] * 5
    assert ReviewItem.objects.get(pk=items[4].pk).answer == {"data": "Read the docs."}


def test_bulk_approve_lists_what_it_will_decide(
    new_page: Callable[[str], Any], reviewer: Any, staff: Any
) -> None:
    first, second = asked("yes_no", staff), asked("yes_no", staff)
    asked("age", staff)
    page = new_page("rita")
    expect(page.locator(".item-row")).to_have_count(3)
    expect(page.locator("input.pick")).to_have_count(2)
    expect(page.locator("body.live")).to_be_visible()  # its resync on open has come back
    page.locator(f"#item-{first.pk} .item-link").focus()
    page.keyboard.press("x")  # ticks the focused row's box
    expect(page.locator(f"#item-{first.pk} input.pick")).to_be_checked()
    page.locator(f"#item-{second.pk} input.pick").check()
    expect(page.locator("input.pick:checked")).to_have_count(2)
    page.click("button:has-text('Approve selected')")
    expect(page.locator("h1")).to_contain_text("Approve these 2 items?")
    expect(page.locator("table.bulk-list tbody tr")).to_have_count(2)
    expect(page.locator("table.bulk-list")).to_contain_text("Deploy to production?")
    assert ReviewItem.objects.filter(status=ReviewItem.Status.PENDING).count() == 3
    page.click("button:has-text('Yes, approve 2 items')")
    expect(page.locator("td.outcome")).to_have_text(["approved", "approved"])
    for item in (first, second):
        finished(item)
        assert state(item)["answer"] is True


def test_screenshots_for_the_readme(
    new_page: Callable[[str], Any], reviewer: Any, staff: Any
) -> None:
    """Keeps docs/queue.png and docs/item.png current when REVIEWDESK_SCREENSHOTS is set."""
    items = [asked(g, staff) for g in ("agent", "parallel_approval", "schema_form", "age")]
    asked("chatbot", staff)
    page = new_page("rita")
    expect(page.locator(".item-row")).to_have_count(6)
    target = os.environ.get("REVIEWDESK_SCREENSHOTS")
    if target:
        page.set_viewport_size({"width": 1100, "height": 900})
        page.screenshot(path=str(Path(target) / "queue.png"), full_page=True)
        page.goto(f"/items/{items[0].pk}/")
        expect(page.locator("body.live")).to_be_visible()
        page.locator("fieldset.action").get_by_label("Edit").check()
        page.locator("fieldset.action").get_by_label("Subject").fill("Launch moved to Monday")
        page.screenshot(path=str(Path(target) / "item.png"), full_page=True)
        page.goto(f"/items/{items[2].pk}/")
        expect(page.locator("body.live")).to_be_visible()
        page.screenshot(path=str(Path(target) / "schema.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 800})
        page.goto("/")
        page.screenshot(path=str(Path(target) / "queue-390.png"))
