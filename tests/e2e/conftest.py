"""Browser fixtures shared by the e2e tests: Debian's Chromium through Playwright."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.test_browser import CHROMIUM_ARGS, log_in


@pytest.fixture
def browser(
    live_server_url: str, chromium_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    # Playwright's sync API keeps an event loop in this thread; our ORM calls here are sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser: Any, live_server_url: str) -> Callable[[str], Any]:
    """A page of a new browser context (its own cookies), logged in as `username`."""

    def make(username: str) -> Any:
        context = browser.new_context(base_url=live_server_url)
        context.set_default_timeout(20_000)
        page = context.new_page()
        log_in(page, username)
        return page

    return make
