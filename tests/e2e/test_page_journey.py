"""The page as a newcomer meets it, in a real Chromium on the real stack: sign-in on the Auth
emulator, the empty state, the conversation list, cards that tell the truth, streaming Markdown,
accessibility (axe-core, focus, one announcement per reply), on a desktop and a phone, light and
dark, with screenshots in test-artifacts/."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from devstack.stack import Stack
from tests.conftest import ARTIFACTS
from tests.e2e.stored_events import append_events
from tests.e2e.test_page import finals, open_page, send, wait_state
from tests.support.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}


@pytest.fixture(params=["desktop", "phone"])
def viewport(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def sized(browser: Browser, viewport: str) -> Iterator[Page]:
    """A fresh profile at the given size (each viewport its own run of a test)."""
    context = browser.new_context(viewport=VIEWPORTS[viewport])
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and ("deploychat:" in msg.text or "Content Security" in msg.text)
            else None
        ),
    )
    yield page
    context.close()
    assert errors == []


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(250)  # transitions (drawer, progress bar) settle
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def axe_check(page: Page, state: str) -> None:
    """Zero serious or critical WCAG 2.1 A/AA violations in this state of the page."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())  # evaluated by the test driver: no page CSP applies
    result: dict[str, Any] = page.evaluate(
        """async () => {
        const r = await axe.run(document, {
            runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
        });
        return r.violations.map(v => ({id: v.id, impact: v.impact,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(" ") + ": " + n.failureSummary)}));
    }"""
    )
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{state}: {json.dumps(bad, indent=1)}"


def open_drawer(page: Page, viewport: str) -> None:
    """On a phone, the side panel is a drawer: open it (if it is not open already)."""
    if viewport == "phone" and page.get_attribute("#sidebar", "data-open") != "true":
        page.click("#open-drawer")
        expect(page.locator("#sidebar")).to_have_attribute("data-open", "true")


def session_id(page: Page) -> str:
    sid: str = page.evaluate("window.deploychat.engine.sessionId")
    return sid


def listed(stack: Stack, page: Page) -> list[dict[str, Any]]:
    token = page.evaluate("window.deploychat.auth.getToken()")
    request = urllib.request.Request(
        f"{stack.edge_url}/api/sessions", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        sessions: list[dict[str, Any]] = json.loads(response.read())
        return sessions


# ---------------------------------------------------------------- sign-in


def test_the_page_signs_in_as_a_guest_and_can_sign_out_and_in_again(
    sized: Page, proxy: TcpProxy, stack: Stack, uid: str, viewport: str
) -> None:
    page = sized
    open_page(page, proxy)
    user = page.evaluate("window.deploychat.auth.user")
    assert user["isAnonymous"] is True and user["uid"]
    open_drawer(page, viewport)
    expect(page.locator("#who")).to_contain_text("Guest")
    expect(page.locator("#sign-out")).to_be_visible()
    shot(page, f"journey-{viewport}-" + ("drawer" if viewport == "phone" else "signed-in"))
    axe_check(page, "signed in, side panel")

    # The socket carried the user's token: the session is the user's and is listed for them.
    send(page, f"who am I [[{uid}]]")
    expect(finals(page)).to_have_count(1, timeout=30_000)
    ids = [s["session_id"] for s in listed(stack, page)]
    assert session_id(page) in ids

    open_drawer(page, viewport)
    page.click("#sign-out")
    expect(page.locator("#signin")).to_be_visible()
    assert page.evaluate("document.activeElement.id") == "signin-google"
    expect(page.locator("#log li")).to_have_count(0)
    expect(page.locator("#input")).to_be_disabled()
    shot(page, f"journey-{viewport}-signed-out")
    axe_check(page, "signed out")

    page.click("#signin-guest")
    expect(page.locator("#signin")).to_be_hidden()
    wait_state(page, "connected")
    other = page.evaluate("window.deploychat.auth.user.uid")
    assert other != user["uid"]
    # Another user: the first one's conversation is not shown, nor kept for this one.
    expect(page.locator("#log li")).to_have_count(0)
    assert session_id(page) not in ids


def test_a_google_user_is_shown_and_sign_in_with_google_asks_google(
    page: Page, proxy: TcpProxy, uid: str
) -> None:
    open_page(page, proxy)
    # "Sign in with Google" goes through the SDK's popup flow, which loads Google's script. It
    # is refused here (as on a machine without internet, like this one): the page must say so
    # clearly, not break.
    requested: list[str] = []

    def refuse(route: Any) -> None:
        requested.append(route.request.url)
        route.abort()

    page.route("https://apis.google.com/**", refuse)
    page.click("#google-sign-in")
    toast = page.locator(".toast.error")
    expect(toast).to_contain_text("Google sign-in did not work", timeout=40_000)
    assert any(url.startswith("https://apis.google.com/js/api.js") for url in requested)
    wait_state(page, "connected")
    # A Google account on the emulator (its documented test credential), signed in through the
    # page's own SDK: the page shows who it is, and its socket carries that user's token.
    page.evaluate(
        """async ([email, name]) => {
        const sdk = await import("./static/vendor/firebase/firebase-auth.js");
        const claims = JSON.stringify({sub: email, email, email_verified: true, name});
        await sdk.signInWithCredential(sdk.getAuth(), sdk.GoogleAuthProvider.credential(claims));
    }""",
        [f"ada-{uid}@example.com", "Ada Lovelace"],
    )
    expect(page.locator("#who")).to_have_text("Ada Lovelace", timeout=30_000)
    expect(page.locator("#google-sign-in")).to_be_hidden()
    user = page.evaluate("window.deploychat.auth.user")
    assert user["isAnonymous"] is False and user["email"] == f"ada-{uid}@example.com"
    wait_state(page, "connected")
    send(page, f"signed in with Google [[{uid}]]")
    expect(finals(page)).to_have_count(1, timeout=30_000)


def test_every_reconnect_sends_a_fresh_token(page: Page, proxy: TcpProxy) -> None:
    open_page(page, proxy)
    page.evaluate("""() => {
        window.inits = [];
        const auth = window.deploychat.auth;
        const engine = window.deploychat.engine;
        const original = engine.getToken;
        engine.getToken = async (force) => {
            const t = await original(force);
            window.inits.push(t);
            return t;
        };
    }""")
    proxy.cut()
    page.wait_for_function("() => window.inits.length >= 1")
    wait_state(page, "connected")
    tokens = page.evaluate("window.inits")
    assert all(isinstance(t, str) and t.count(".") == 2 for t in tokens)


def test_a_kept_session_that_is_gone_is_said_and_a_new_one_starts(
    page: Page, proxy: TcpProxy, uid: str
) -> None:
    open_page(page, proxy)
    send(page, f"soon forgotten [[{uid}]]")
    expect(finals(page)).to_have_count(1, timeout=30_000)
    old = session_id(page)
    # As if the server lost it (or it was never ours): the page keeps an id it cannot resume.
    page.evaluate(
        "id => localStorage.setItem('deploychat.session',"
        " JSON.stringify({session_id: id, last_seq: 3}))",
        f"gone{uid}",
    )
    page.reload()
    page.wait_for_function("() => window.deploychat.ready === true")
    wait_state(page, "connected")
    notice = page.locator("#intro-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("no longer available")
    assert session_id(page) not in (old, f"gone{uid}")
    expect(page.locator("#log li")).to_have_count(0)


# ---------------------------------------------------------------- the empty state


@pytest.fixture
def offline_edge(stack: Stack) -> Iterator[Stack]:
    """Offline mode (as the `offline` fixture), and an edge that says so in /api/config: the
    edge reads the model at start, from the function's settings, so both restart, both ways."""
    function_env, edge_env = dict(stack.config.function_env), dict(stack.config.edge_env)
    stack.config.function_env = {"DEPLOYCHAT_OFFLINE_PIECE_DELAY_MS": "0"}
    stack.restart_function()
    stack.restart_edge()
    yield stack
    stack.config.function_env, stack.config.edge_env = function_env, edge_env
    stack.restart_function()
    stack.restart_edge()


def test_the_empty_state_teaches_and_its_suggestions_work(
    sized: Page, proxy: TcpProxy, offline_edge: Stack, viewport: str
) -> None:
    page = sized
    open_page(page, proxy)
    expect(page.locator("#mode")).to_have_text("offline mode")
    expect(page.locator("#capabilities")).to_contain_text("deploy")
    buttons = page.locator("#suggestions button")
    expect(buttons).to_have_count(4)
    assert "analyse ./examples/hello-flask" in buttons.all_inner_texts()
    shot(page, f"journey-{viewport}-empty")
    axe_check(page, "empty state")
    page.get_by_role("button", name="Send: analyse ./examples/hello-flask").click()
    assert page.evaluate("document.activeElement.id") == "input"
    expect(page.locator("#log .card.analysis")).to_have_count(1, timeout=60_000)
    expect(page.locator("#log .card.analysis")).to_contain_text("flask")
    expect(finals(page)).to_have_count(1, timeout=60_000)
    # The offline answer's "**Offline mode**" is bold, never raw.
    assert "**" not in finals(page).inner_text()
    shot(page, f"journey-{viewport}-analysis")


# ---------------------------------------------------------------- the conversation list


def test_new_conversation_keeps_the_old_one_and_opening_it_replays_it(
    sized: Page, proxy: TcpProxy, uid: str, viewport: str
) -> None:
    page = sized
    open_page(page, proxy)
    send(page, f"first conversation [[{uid}]]")
    expect(finals(page)).to_have_count(1, timeout=30_000)
    first = session_id(page)
    open_drawer(page, viewport)
    page.click("#new-conversation")
    assert page.evaluate("document.activeElement.id") == "input"
    page.wait_for_function("old => window.deploychat.engine.sessionId !== old", arg=first)
    wait_state(page, "connected")
    send(page, f"second conversation [[{uid}]]")
    expect(finals(page)).to_have_count(1, timeout=30_000)
    items = page.locator("#sessions button.session")
    expect(items).to_have_count(2, timeout=10_000)
    expect(items.nth(0)).to_contain_text("second conversation")  # newest first
    expect(items.nth(1)).to_contain_text("first conversation")
    expect(items.nth(0)).to_have_attribute("aria-current", "true")
    # (text, not inner text: on a phone the drawer is closed, so nothing is rendered)
    assert page.locator("#sessions .session-time").all_text_contents()[0] == "just now"
    open_drawer(page, viewport)
    shot(page, f"journey-{viewport}-conversations")
    axe_check(page, "conversation list")
    items.nth(1).click()
    wait_state(page, "connected")
    expect(page.locator("#log li.msg.user .bubble")).to_have_text([f"first conversation [[{uid}]]"])
    expect(finals(page).locator(".bubble")).to_have_text([f"Echo: first conversation [[{uid}]]"])
    assert session_id(page) == first
    assert page.evaluate("document.activeElement.id") == "input"
    expect(page.locator("#sessions button.session").nth(1)).to_have_attribute(
        "aria-current", "true"
    )


# ---------------------------------------------------------------- cards and rendering


def cloud_run_turn(turn: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "chat",
            "turn_id": turn,
            "message_id": turn,
            "role": "user",
            "final": True,
            "content": "deploy ./examples/hello-flask to cloud run project p region europe-west1",
        },
        {
            "type": "deployment_update",
            "turn_id": turn,
            "deployment_id": f"{turn}-run",
            "stage": "awaiting_confirmation",
            "progress": 0,
            "message": "Deploy **hello-flask** to `cloud_run` as `hello-flask` in `europe-west1`?",
            "confirm": {
                "target": "cloud_run",
                "source": "./examples/hello-flask",
                "project": "demo-p",
                "region": "europe-west1",
                "service": "hello-flask",
            },
        },
    ]


def ended(turn: str, dep: str, outcome: str, message: str) -> dict[str, Any]:
    return {
        "type": "deployment_complete",
        "turn_id": turn,
        "deployment_id": dep,
        "status": "succeeded" if outcome == "succeeded" else "failed",
        "outcome": outcome,
        "message": message,
    }


def test_cards_tell_the_truth_declined_and_cancelled_are_neutral(
    sized: Page, proxy: TcpProxy, stack: Stack, uid: str, viewport: str
) -> None:
    page = sized
    open_page(page, proxy)
    session = session_id(page)
    append_events(stack, session, cloud_run_turn(f"a{uid}"))
    card = page.locator(f'[data-deployment="a{uid}-run"]')
    expect(card.locator("h3")).to_have_text("Confirm deployment")
    text = card.inner_text()
    assert "`" not in text and "cloud_run" not in text and "**" not in text, text
    expect(card.locator("dd").first).to_have_text("Cloud Run")
    shot(page, f"journey-{viewport}-cloud-run-confirm")
    axe_check(page, "Cloud Run confirmation")
    # Not now: focus goes on in the composer, not lost with the buttons.
    card.get_by_role("button", name="Not now: answer no to the deployment").click()
    assert page.evaluate("document.activeElement.id") == "input"
    append_events(
        stack,
        session,
        [
            ended(f"a{uid}", f"a{uid}-run", "declined", "You said no: nothing was deployed."),
            {
                "type": "deployment_update",
                "turn_id": f"b{uid}",
                "deployment_id": f"b{uid}-run",
                "stage": "build_image",
                "progress": 40,
                "message": "Building with `docker build`…",
            },
            ended(f"b{uid}", f"b{uid}-run", "cancelled", "Stopped: the build was cancelled."),
            ended(f"c{uid}", f"c{uid}-run", "failed", "The build failed: see the log."),
        ],
    )
    declined = page.locator(f'[data-deployment="a{uid}-run"]')
    expect(declined.locator("h3")).to_have_text("Deployment declined")
    expect(declined).to_have_attribute("data-status", "declined")
    cancelled = page.locator(f'[data-deployment="b{uid}-run"]')
    expect(cancelled.locator("h3")).to_have_text("Deployment cancelled")
    failed = page.locator(f'[data-deployment="c{uid}-run"]')
    expect(failed.locator("h3")).to_have_text("Deployment failed")
    red = "rgb(220, 38, 38)"
    for neutral in (declined, cancelled):
        assert neutral.evaluate("e => getComputedStyle(e).borderLeftColor") != red
    assert failed.evaluate("e => getComputedStyle(e).borderLeftColor") == red
    assert "✕" not in declined.inner_text() and "✕" not in cancelled.inner_text()
    shot(page, f"journey-{viewport}-outcomes")
    axe_check(page, "deployment outcomes")


def test_streaming_markdown_never_shows_raw_markers_and_code_is_highlighted(
    page: Page, proxy: TcpProxy, stack: Stack, uid: str
) -> None:
    open_page(page, proxy)
    session = session_id(page)
    turn = f"s{uid}"
    reply = f"{turn}-reply"
    piece = {"type": "chat", "turn_id": turn, "message_id": reply, "role": "assistant"}
    append_events(
        stack,
        session,
        [
            {**piece, "message_id": turn, "role": "user", "final": True, "content": "hi"},
            {"type": "typing", "turn_id": turn, "is_typing": True},
            {**piece, "delta": "**Offline"},
        ],
    )
    bubble = page.locator(f'li[data-id="{reply}"] .bubble')
    expect(bubble.locator("strong")).to_have_text("Offline")
    assert "*" not in bubble.inner_text()
    # The model is retrying: the page says so instead of a silent spinner.
    append_events(
        stack,
        session,
        [{"type": "typing", "turn_id": turn, "is_typing": True, "status": "retrying"}],
    )
    expect(page.locator("#typing")).to_be_visible()
    expect(page.locator("#typing-text")).to_have_text("The model is busy; trying again…")
    append_events(stack, session, [{**piece, "delta": " mode** runs `gunic"}])
    expect(bubble.locator("code")).to_have_text("gunic")
    assert "`" not in bubble.inner_text() and "**" not in bubble.inner_text()
    append_events(stack, session, [{**piece, "delta": "orn`. See [the docs](https://cloud.goo"}])
    expect(bubble).to_contain_text("See the docs")
    assert "[" not in bubble.inner_text() and "](" not in bubble.inner_text()
    code = "```python\nimport os\n\ndef main():\n    return os.environ['PORT']\n```"
    full = (
        f"**Offline mode** runs `gunicorn`. See [the docs](https://cloud.google.com/run).\n\n{code}"
    )
    append_events(
        stack,
        session,
        [
            {**piece, "final": True, "content": full},
            {"type": "typing", "turn_id": turn, "is_typing": False},
        ],
    )
    expect(bubble.locator("a")).to_have_attribute("href", "https://cloud.google.com/run")
    expect(bubble.locator("code.hljs .hljs-keyword").first).to_have_text("import")
    expect(bubble.locator("pre code")).to_have_text(
        "import os\n\ndef main():\n    return os.environ['PORT']"
    )
    expect(page.locator("#typing")).to_be_hidden()
    shot(page, "journey-desktop-highlighted")


def test_a_finished_reply_is_announced_once_and_the_log_is_not_live(
    page: Page, proxy: TcpProxy, uid: str
) -> None:
    open_page(page, proxy)
    assert page.get_attribute("#log", "aria-live") == "off"
    assert page.get_attribute("#announcer", "aria-live") == "polite"
    page.evaluate("""() => {
        window.announced = [];
        new MutationObserver(() => {
            const t = document.getElementById("announcer").textContent;
            if (t) window.announced.push(t);
        }).observe(document.getElementById("announcer"),
                   {childList: true, characterData: true, subtree: true});
    }""")
    send(page, f"say it once [[{uid}]]")
    expect(finals(page)).to_have_count(1, timeout=30_000)
    page.wait_for_function("() => window.announced.length >= 1")
    page.wait_for_timeout(300)
    assert page.evaluate("window.announced") == [f"Assistant: Echo: say it once [[{uid}]]"]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_state_passes_axe_in_light_and_dark(
    browser: Browser, proxy: TcpProxy, stack: Stack, uid: str, scheme: str
) -> None:
    from tests.e2e.test_page import staged_conversation

    context = browser.new_context(viewport=DESKTOP, color_scheme=scheme)  # type: ignore[arg-type]
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        open_page(page, proxy)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert (background == "rgb(15, 20, 27)") == (scheme == "dark"), background
        axe_check(page, f"{scheme}: empty")
        session = session_id(page)
        append_events(stack, session, staged_conversation(session, f"x{uid}"))
        append_events(stack, session, cloud_run_turn(f"y{uid}"))
        expect(page.locator("#log .card.result")).to_have_count(1)
        expect(page.locator("#log .confirm")).to_have_count(1)
        page.wait_for_timeout(500)
        axe_check(page, f"{scheme}: conversation with cards")
        page.screenshot(path=str(ARTIFACTS / f"journey-desktop-{scheme}.png"), full_page=True)
        proxy.refuse()
        proxy.cut()
        wait_state(page, "reconnecting")
        send(page, f"queued while offline [[{uid}]]")
        expect(page.locator('#pending li[data-status="queued"]')).to_have_count(1)
        axe_check(page, f"{scheme}: reconnecting, a message queued")
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(300)
        axe_check(page, f"{scheme}: phone")
        page.screenshot(path=str(ARTIFACTS / f"journey-phone-{scheme}.png"))
        proxy.allow()
        wait_state(page, "connected")
    finally:
        proxy.allow()
        context.close()


def test_the_page_has_a_favicon(page: Page, proxy: TcpProxy) -> None:
    open_page(page, proxy)
    href = page.get_attribute('link[rel="icon"]', "href")
    assert href == "static/favicon.svg"
    with urllib.request.urlopen(f"{proxy.http_url}/{href}", timeout=10) as response:
        assert response.status == 200
        assert b"<svg" in response.read()
