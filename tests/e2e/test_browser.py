"""A reviewer in headless Chromium: items arrive live, are answered, threads complete.

Real Daphne, real Celery worker, real Redis, the test database; Playwright drives Debian's
Chromium through executable_path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from reviewdesk.engine import registry
from reviewdesk.models import Thread
from reviewdesk.services import threads as thread_services

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db", "celery_worker")]

# Live updates cross Redis, a worker and a socket; on a loaded 2-core CI box give them time.
expect.set_options(timeout=15_000)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page(
    live_server_url: str, chromium_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    # Playwright's sync API keeps an event loop in this thread; our ORM calls here are sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=live_server_url)
        context.set_default_timeout(20_000)
        yield context.new_page()
        browser.close()


def log_in(page: Any, username: str) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    page.click("button[type=submit]")
    # Not "**/": that glob matches the login page itself, and a goto right after would cut
    # the login's POST short.
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def start(graph: str, user: Any) -> Thread:
    return thread_services.thread_start(
        graph=graph, input=registry.graph_specs()[graph].example_input, user=user
    )


def open_item_from_queue(page: Any, text: str) -> None:
    """Wait on the open queue page for a row to arrive live, then open it."""
    row = page.locator(".item-row", has_text=text)
    expect(row).to_be_visible()
    row.locator("a").click()
    page.wait_for_url("**/items/*/")
    expect(page.locator("body.live")).to_be_visible()


def submit(page: Any) -> None:
    page.click("button:has-text('Submit answer')")
    expect(page.locator("#answer-panel")).to_contain_text("by rita")


def back_to_queue(page: Any) -> None:
    page.click("text=← Queue")
    expect(page.locator("body.live")).to_be_visible()


def test_four_example_graphs_through_the_browser(page: Any, reviewer: Any, staff: Any) -> None:
    log_in(page, "rita")
    expect(page.locator("body.live")).to_be_visible()  # the queue's socket is open
    expect(page.locator(".empty-note")).to_be_visible()
    page.evaluate("window.__noReload = true")

    # An item appears on the open queue page without a reload.
    age = start("age", staff)
    expect(page.locator(".item-row", has_text="What is your age?")).to_be_visible()
    assert page.evaluate("window.__noReload") is True

    open_item_from_queue(page, "What is your age?")
    page.fill("#id_answer", "42")
    submit(page)
    progress = page.locator("#thread-progress")
    expect(progress).to_contain_text("Completed")  # pushed live: queued → running → completed
    age.refresh_from_db()
    assert age.status == Thread.Status.COMPLETED

    back_to_queue(page)
    chatbot = start("chatbot", staff)
    open_item_from_queue(page, "expert help")
    page.fill("#id_f__data", "Start with LangGraph's tutorials.")
    submit(page)
    expect(page.locator("#thread-progress")).to_contain_text("Completed")
    expect(page.locator("#thread-state")).to_contain_text("Start with LangGraph's tutorials.")
    chatbot.refresh_from_db()
    assert chatbot.status == Thread.Status.COMPLETED

    back_to_queue(page)
    agent = start("agent", staff)
    open_item_from_queue(page, "Send an email to alice@example.com")
    page.check("input[name=decision_0][value=edit]")
    page.fill("#id_a0__to", "bob@example.com")
    page.fill("#id_a0__subject", "Launch")
    page.fill("#id_a0__body", "See you Friday")
    submit(page)
    expect(page.locator("#thread-progress")).to_contain_text("Completed")
    expect(page.locator("#thread-state")).to_contain_text("bob@example.com")
    agent.refresh_from_db()
    assert agent.status == Thread.Status.COMPLETED

    back_to_queue(page)
    parallel = start("parallel_approval", staff)
    open_item_from_queue(page, "Approve this draft for legal?")
    page.fill("#id_extra_comment", "fine")
    page.get_by_label("then open the next item").uncheck()
    page.click("button:has-text('Approve')")
    expect(page.locator("#answer-panel")).to_contain_text("by rita")
    back_to_queue(page)
    open_item_from_queue(page, "Approve this draft for brand?")
    page.click("button:has-text('Approve')")
    expect(page.locator("#answer-panel")).to_contain_text("by rita")
    expect(page.locator("#thread-progress")).to_contain_text("Completed")
    parallel.refresh_from_db()
    assert parallel.status == Thread.Status.COMPLETED
    values = registry.graph_get("parallel_approval").get_state(parallel.langgraph_config).values
    assert len(values["published"]) == 1

    back_to_queue(page)
    expect(page.locator(".item-row")).to_have_count(0)
    expect(page.locator(".empty-note")).to_be_visible()


def test_invalid_answer_shows_inline_error_and_changes_nothing(
    page: Any, reviewer: Any, staff: Any
) -> None:
    thread = start("age", staff)
    log_in(page, "rita")
    open_item_from_queue(page, "What is your age?")
    page.check("input[name=mode][value=json]")
    page.fill("#id_answer", '{"data": ')
    page.click("button:has-text('Submit answer')")
    expect(page.locator("#answer-panel .error")).to_contain_text("not valid JSON")
    thread.refresh_from_db()
    assert thread.status == Thread.Status.INTERRUPTED
    assert thread.items.get().status == "pending"


def test_screenshot_for_the_readme(page: Any, reviewer: Any, staff: Any) -> None:
    """Keeps docs/screenshot-queue.png current when REVIEWDESK_SCREENSHOTS is set."""
    for graph in ("age", "agent", "parallel_approval", "chatbot"):
        start(graph, staff)
    log_in(page, "rita")
    expect(page.locator(".item-row")).to_have_count(5)
    target = os.environ.get("REVIEWDESK_SCREENSHOTS")
    if target:
        page.set_viewport_size({"width": 1100, "height": 640})
        page.screenshot(path=str(Path(target) / "queue.png"))
        page.locator(".item-row", has_text="Send an email").locator("a").click()
        expect(page.locator("body.live")).to_be_visible()
        page.screenshot(path=str(Path(target) / "item.png"), full_page=True)


def test_open_page_reconnects_and_resyncs_after_a_server_restart(
    desk_env: dict[str, str],
    chromium_path: Path,
    tmp_path: Path,
    reviewer: Any,
    staff: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Daphne goes away and comes back on the same port: the page recovers by itself."""
    from tests import procs

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    server = procs.start_daphne(desk_env, log_path=tmp_path / "daphne.log")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
            page = browser.new_context(base_url=server.url).new_page()
            page.set_default_timeout(30_000)
            log_in(page, "rita")
            expect(page.locator("body.live")).to_be_visible()
            page.evaluate("window.__noReload = true")

            server.stop()
            expect(page.locator("body.live")).to_have_count(0)
            # Missed while the server was down: only a resync on reconnect can show it.
            start("age", staff)
            server = procs.start_daphne(desk_env, port=server.port, log_path=tmp_path / "d2.log")

            # Reconnect backoff is capped at 10 s (static/reviewdesk/desk.js).
            expect(page.locator("body.live")).to_be_visible(timeout=30_000)
            expect(page.locator(".item-row", has_text="What is your age?")).to_be_visible()
            assert page.evaluate("window.__noReload") is True
            browser.close()
    finally:
        server.stop()
