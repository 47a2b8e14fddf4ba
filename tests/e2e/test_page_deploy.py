"""The product's promise in the browser: ask for a deployment, confirm it, watch it, open it."""

from __future__ import annotations

import urllib.request

from playwright.sync_api import Page, expect

from devstack.stack import Stack
from tests.conftest import ARTIFACTS
from tests.e2e.test_page import open_page, send
from tests.support.tcp_proxy import TcpProxy


def test_deploy_the_example_locally_from_the_page(
    page: Page, proxy: TcpProxy, offline: Stack, cleanup_deployments: None
) -> None:
    open_page(page, proxy)
    send(page, "deploy ./examples/hello-flask locally")
    card = page.locator(".deployment")
    expect(card.locator("h3")).to_have_text("Confirm deployment")
    expect(card).to_contain_text("hello-flask")
    expect(card).to_contain_text("this machine")
    deploy = card.get_by_role("button", name="Deploy: answer yes to the deployment")
    deploy.click()
    expect(card.locator(".confirm")).to_have_count(0, timeout=30_000)
    expect(card.locator("h3")).to_have_text("Deployed", timeout=180_000)
    url = card.locator(".result-url a").get_attribute("href")
    assert url is not None and url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
    # The answer is in the conversation too, and my "yes" was delivered.
    expect(page.locator("#log")).to_contain_text(url.rstrip("/"))
    expect(page.locator("#log .streaming")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-deploy.png"), full_page=True)
