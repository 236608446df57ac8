"""The ops page in headless Chromium updates live when an item is answered (real Daphne, worker)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from reviewdesk import tally
from reviewdesk.models import Thread
from reviewdesk.services import items as item_services
from tests.e2e.test_browser import CHROMIUM_ARGS, log_in, start
from tests.support import pending, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db", "celery_worker")]


@pytest.fixture
def page(
    live_server_url: str, chromium_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        context = browser.new_context(
            base_url=live_server_url, viewport={"width": 1280, "height": 1100}
        )
        context.set_default_timeout(20_000)
        yield context.new_page()
        browser.close()


def test_ops_page_updates_live_when_an_item_is_answered(
    page: Any, staff: Any, reviewer: Any
) -> None:
    tally.rebuild()  # a flush by an earlier test may have left deltas behind
    threads = [start("age", staff) for _ in range(2)]
    for thread in threads:
        wait_for(
            lambda t=thread: Thread.objects.get(pk=t.pk).status == "interrupted",
            what="the question",
        )
    log_in(page, "stella")
    page.goto("/ops/")
    expect(page.locator("body.live")).to_be_attached()
    queue = page.locator("#ops-queue-default")
    expect(queue.locator(".fig-pending")).to_have_text("2")
    expect(queue.locator(".fig-decided")).to_have_text("0")

    [item] = pending(threads[0])
    item_services.review_item_answer(item_id=item.pk, reviewer=reviewer, answer="36")

    # No reload: the push hints the page, which fetches its fragments again.
    expect(queue.locator(".fig-pending")).to_have_text("1")
    expect(queue.locator(".fig-decided")).to_have_text("1")
    expect(page.locator("#ops-threads .count-completed")).to_have_text("1")
    expect(page.locator(".reviewers")).to_contain_text("rita: 1")
    target = os.environ.get("REVIEWDESK_SCREENSHOTS")
    if target:
        page.screenshot(path=str(Path(target) / "ops.png"), full_page=True)
