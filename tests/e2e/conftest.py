"""A real Chromium (Debian's, never a downloaded one) for the page tests, and the proxy the
page is loaded through so its socket can be broken on purpose."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from devstack.stack import Stack
from tests.support.tcp_proxy import TcpProxy

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope: Playwright's sync API keeps an event loop of its own, which must be gone
    # before other suites call asyncio.run() in this thread.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def proxy(stack: Stack) -> Iterator[TcpProxy]:
    with TcpProxy(stack.config.edge_port) as proxy:
        yield proxy


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile per test: its own localStorage, so its own session."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(20_000)
    page = context.new_page()
    # A script error, or a view listener the engine caught failing, fails the test.
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and msg.text.startswith("deploychat:")
            else None
        ),
    )
    yield page
    context.close()
    assert errors == []
