"""The chat page in a real Chromium, through a proxy that breaks its connection on purpose."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from playwright.sync_api import Dialog, Page, expect

from devstack.stack import Stack
from tests.conftest import ARTIFACTS
from tests.e2e.stored_events import append_events
from tests.support.fake_gemini import FakeGemini, Reply, Script
from tests.support.tcp_proxy import TcpProxy

# Shortened timings, through the page's own configuration hook (query parameters).
FAST = {
    "ping_ms": 1000,
    "pong_timeout_ms": 1000,
    "backoff_ms": 200,
    "jitter": 0.1,
    "connect_timeout_ms": 3000,
}

GREEN, AMBER, RED = "rgb(22, 163, 74)", "rgb(245, 158, 11)", "rgb(220, 38, 38)"


def open_page(page: Page, proxy: TcpProxy, **overrides: float) -> None:
    query = urlencode({**FAST, **overrides})
    page.goto(f"{proxy.http_url}/?{query}")
    page.wait_for_function("() => window.deploychat.ready === true")
    wait_state(page, "connected")
    watch_events(page)


def watch_events(page: Page) -> None:
    """Record every event the engine applies, to check each came once, in order."""
    page.evaluate("""() => {
        window.appliedSeqs = [];
        window.deploychat.engine.on("event", (e) => window.appliedSeqs.push(e.seq));
    }""")


def wait_state(page: Page, state: str, timeout: float = 20_000) -> None:
    """Until the page is in `state`."""
    page.wait_for_function("s => window.deploychat.engine?.state === s", arg=state, timeout=timeout)


def wait_passed(page: Page, state: str, since: int, timeout: float = 20_000) -> None:
    """Until the page has been in `state` since its `since`-th state change: never misses a
    state that lasted less than a polling interval."""
    page.wait_for_function(
        "([s, i]) => window.deploychat.states.slice(i).includes(s)",
        arg=[state, since],
        timeout=timeout,
    )


def state_count(page: Page) -> int:
    count: int = page.evaluate("window.deploychat.states.length")
    return count


def send(page: Page, text: str) -> None:
    page.fill("#input", text)
    page.press("#input", "Enter")


def dot_colour(page: Page) -> str:
    colour: str = page.eval_on_selector("#status .dot", "e => getComputedStyle(e).backgroundColor")
    return colour


def states(page: Page) -> list[str]:
    seen: list[str] = page.evaluate("window.deploychat.states")
    return seen


def applied(page: Page) -> list[int]:
    seqs: list[int] = page.evaluate("window.appliedSeqs")
    return seqs


def user_texts(page: Page) -> list[str]:
    return page.locator("#log li.msg.user .bubble").all_inner_texts()


def finals(page: Page) -> Any:
    return page.locator('#log li.msg.assistant[data-final="true"]')


def test_a_reply_cut_off_mid_stream_arrives_complete_exactly_once(
    page: Page, proxy: TcpProxy, fake_gemini: FakeGemini, uid: str
) -> None:
    chunks = [f"piece{i} " for i in range(16)]
    fake_gemini.script(uid, Script(replies=[Reply(chunks=chunks, delay_s=0.15)]))
    open_page(page, proxy)
    send(page, f"stream please [[{uid}]]")
    reply = page.locator("#log li.msg.assistant")
    # The first turn of a fresh stack on a loaded machine may take a while to start.
    expect(reply.locator(".bubble")).to_contain_text("piece0", timeout=30_000)
    assert reply.get_attribute("data-final") == "false"
    assert proxy.cut() >= 1
    expect(finals(page)).to_have_count(1, timeout=30_000)
    expect(reply).to_have_count(1)
    assert reply.locator(".bubble").inner_text().strip() == "".join(chunks).strip()
    seqs = applied(page)
    assert seqs == list(range(1, len(seqs) + 1))
    assert "reconnecting" in states(page)
    expect(page.locator('#log li.msg.user[data-status="delivered"]')).to_have_count(1)


def test_messages_typed_offline_are_delivered_once_in_order_after_the_reconnect(
    page: Page, proxy: TcpProxy, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(uid, Script(replies=[Reply(chunks=["noted ", "✓"], delay_s=0.05)]))
    open_page(page, proxy)
    proxy.refuse()
    proxy.cut()
    wait_state(page, "reconnecting")
    texts = [f"offline message {n} [[{uid}]]" for n in range(3)]
    for text in texts:
        send(page, text)
    queued = page.locator('#pending li.msg.user[data-status="queued"]')
    expect(queued).to_have_count(3)
    assert queued.locator(".delivery").all_inner_texts() == ["Queued"] * 3
    time.sleep(0.6)  # a few refused attempts
    proxy.allow()
    expect(finals(page)).to_have_count(3, timeout=40_000)
    assert user_texts(page) == texts
    expect(page.locator("#pending li")).to_have_count(0)
    expect(page.locator('#log li.msg.user[data-status="delivered"]')).to_have_count(3)
    seqs = applied(page)
    assert seqs == list(range(1, len(seqs) + 1))
    assert proxy.refused >= 1


def test_a_blackholed_link_is_found_by_the_heartbeat_and_recovered(
    page: Page, proxy: TcpProxy, uid: str
) -> None:
    open_page(page, proxy)
    since = state_count(page)
    assert proxy.blackhole() >= 1
    started = time.monotonic()
    send(page, f"anyone there? [[{uid}]]")  # into the void: no ack, so it stays queued
    wait_passed(page, "reconnecting", since, timeout=6_000)
    noticed = time.monotonic() - started
    assert noticed < 3.5, noticed  # one ping interval + the pong timeout, plus slack
    expect(finals(page)).to_have_count(1, timeout=30_000)
    assert user_texts(page) == [f"anyone there? [[{uid}]]"]
    expect(finals(page).locator(".bubble")).to_have_text(f"Echo: anyone there? [[{uid}]]")
    seqs = applied(page)
    assert seqs == list(range(1, len(seqs) + 1))


def test_the_status_indicator_shows_each_state(page: Page, proxy: TcpProxy) -> None:
    # Attempts slow enough to see "reconnecting" before the page gives up.
    open_page(page, proxy, max_attempts=2, backoff_ms=1000, jitter=0)
    assert dot_colour(page) == GREEN
    expect(page.locator("#status-text")).to_have_text("Connected")
    expect(page.locator("#reconnect")).to_be_hidden()

    proxy.refuse()
    proxy.cut()
    wait_state(page, "reconnecting")
    assert dot_colour(page) == AMBER
    expect(page.locator("#status-text")).to_contain_text("Reconnecting")

    wait_state(page, "error")
    assert dot_colour(page) == RED
    expect(page.locator("#status-text")).to_have_text("Connection failed")
    expect(page.locator("#reconnect")).to_be_visible()

    proxy.allow()
    page.click("#reconnect")
    wait_state(page, "connected")
    assert dot_colour(page) == GREEN

    page.context.set_offline(True)
    wait_state(page, "disconnected")
    assert dot_colour(page) == RED
    expect(page.locator("#status-text")).to_have_text("Offline")
    page.context.set_offline(False)
    wait_state(page, "connected")

    seen = states(page)
    assert seen[:3] == ["idle", "connecting", "connected"]
    assert set(seen) == {"idle", "connecting", "connected", "reconnecting", "error", "disconnected"}
    assert seen.index("error") > seen.index("reconnecting")


def test_a_reload_keeps_the_history_and_the_queued_messages(
    page: Page, proxy: TcpProxy, uid: str
) -> None:
    open_page(page, proxy)
    send(page, f"before the reload [[{uid}]]")
    expect(finals(page)).to_have_count(1)

    # The page still loads, but its socket cannot connect.
    proxy.refuse(websockets_only=True)
    proxy.cut()
    wait_state(page, "reconnecting")
    send(page, f"written offline [[{uid}]]")
    expect(page.locator('#pending li[data-status="queued"]')).to_have_count(1)

    page.reload()
    wait_state(page, "reconnecting")
    queued = page.locator('#pending li[data-status="queued"] .bubble')
    expect(queued).to_have_text(f"written offline [[{uid}]]")
    expect(page.locator("#log li")).to_have_count(0)  # the history comes from the server

    proxy.allow()
    wait_state(page, "connected")
    expect(finals(page)).to_have_count(2, timeout=30_000)
    assert user_texts(page) == [f"before the reload [[{uid}]]", f"written offline [[{uid}]]"]
    assert finals(page).locator(".bubble").all_inner_texts() == [
        f"Echo: before the reload [[{uid}]]",
        f"Echo: written offline [[{uid}]]",
    ]
    expect(page.locator("#pending li")).to_have_count(0)
    session = page.evaluate("JSON.parse(localStorage.getItem('deploychat.session'))")
    assert session["last_seq"] == page.evaluate("window.deploychat.engine.lastSeq") > 0


def test_html_in_a_message_is_shown_as_text(page: Page, proxy: TcpProxy, uid: str) -> None:
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    open_page(page, proxy)
    payload = (
        f"<img src=x onerror=alert(1)> <script>alert(2)</script> "
        f"[click](javascript:alert(3)) **bold** [[{uid}]]"
    )
    send(page, payload)
    expect(finals(page)).to_have_count(1)
    page.wait_for_timeout(300)
    assert user_texts(page) == [payload]
    reply = finals(page).locator(".bubble")
    assert "<img src=x onerror=alert(1)>" in reply.inner_text()
    assert "[click](javascript:alert(3))" in reply.inner_text()
    expect(reply.locator("strong")).to_have_text("bold")  # Markdown still works
    assert page.locator("#conversation img, #conversation script").count() == 0
    assert page.locator("#conversation a").count() == 0
    assert dialogs == []


LINK = 'target="_blank" rel="noopener noreferrer nofollow"'
MARKDOWN_CASES = {
    "**bold**, *it*, _it_ and `co<de>`": (
        "<p><strong>bold</strong>, <em>it</em>, <em>it</em> and <code>co&lt;de&gt;</code></p>"
    ),
    "[ok](https://example.com/a) [bad](javascript:alert(1)) [rel](/x)": (
        f'<p><a href="https://example.com/a" {LINK}>ok</a> [bad](javascript:alert(1)) [rel](/x)</p>'
    ),
    "- a\n- b\n\n3. x\n4. y": (
        '<ul><li>a</li><li>b</li></ul><ol start="3"><li>x</li><li>y</li></ol>'
    ),
    "```js\nlet a = '<img>';\n```": (
        '<div class="code-block"><div class="code-head"><span>js</span><button type="button" '
        'class="copy" aria-label="Copy code">Copy</button></div><pre><code data-language="js">'
        "let a = '&lt;img&gt;';</code></pre></div>"
    ),
    "<img src=x onerror=alert(1)>": "<p>&lt;img src=x onerror=alert(1)&gt;</p>",
    "snake_case_name stays\nas is": "<p>snake_case_name stays<br>as is</p>",
    "# Title\n> quoted": "<h3>Title</h3><blockquote><p>quoted</p></blockquote>",
    "see https://x.run.app.": f'<p>see <a href="https://x.run.app/" {LINK}>https://x.run.app</a>.</p>',
}


def test_the_markdown_renderer_builds_only_safe_nodes(page: Page, proxy: TcpProxy) -> None:
    open_page(page, proxy)
    rendered = page.evaluate(
        """async (cases) => {
        const { renderMarkdown } = await import("./static/markdown.js");
        return cases.map((text) => {
            const div = document.createElement("div");
            div.append(renderMarkdown(text));
            return div.innerHTML;
        });
    }""",
        list(MARKDOWN_CASES),
    )
    assert dict(zip(MARKDOWN_CASES, rendered, strict=True)) == MARKDOWN_CASES


def test_the_keyboard_alone_is_enough(page: Page, proxy: TcpProxy, uid: str) -> None:
    open_page(page, proxy)
    assert page.evaluate("document.activeElement.id") == "input"
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type(f"line two [[{uid}]]")
    page.keyboard.press("Enter")
    expect(finals(page)).to_have_count(1)
    assert user_texts(page) == [f"line one\nline two [[{uid}]]"]
    assert page.input_value("#input") == ""
    # Every control has a name a screen reader can say.
    names = page.eval_on_selector_all(
        "button, textarea", "els => els.map(e => e.getAttribute('aria-label'))"
    )
    assert names and all(names), names
    # Finished replies are read out from the announcer; the log is not live, so a streaming
    # reply is not re-read at every piece (test_page_journey.py checks it is read once).
    assert page.get_attribute("#announcer", "aria-live") == "polite"
    assert page.get_attribute("#log", "aria-live") == "off"
    assert page.get_attribute("#status", "aria-live") == "polite"


def test_new_conversation_starts_a_new_session(page: Page, proxy: TcpProxy, uid: str) -> None:
    open_page(page, proxy)
    send(page, f"old conversation [[{uid}]]")
    expect(finals(page)).to_have_count(1)
    old = page.evaluate("window.deploychat.engine.sessionId")
    page.click("#new-conversation")
    expect(page.locator("#log li")).to_have_count(0)
    page.wait_for_function(
        "old => { const id = window.deploychat.engine.sessionId; return id && id !== old; }",
        arg=old,
    )
    wait_state(page, "connected")
    new = page.evaluate("window.deploychat.engine.sessionId")
    page.reload()
    wait_state(page, "connected")
    assert page.evaluate("window.deploychat.engine.sessionId") == new
    page.wait_for_timeout(300)
    expect(page.locator("#log li")).to_have_count(0)


def test_stop_cancels_the_running_turn(
    page: Page, proxy: TcpProxy, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(
        uid, Script(replies=[Reply(chunks=[f"w{i} " for i in range(50)], delay_s=0.1)])
    )
    open_page(page, proxy)
    send(page, f"go on and on [[{uid}]]")
    expect(page.locator("#stop")).to_be_visible()
    expect(page.locator("#log li.msg.assistant .bubble")).to_contain_text("w2")
    page.click("#stop")
    expect(finals(page)).to_have_count(1)
    reply = finals(page)
    assert reply.get_attribute("data-stopped") == "true"
    expect(reply.locator(".tag")).to_have_text("Stopped")
    assert "w49" not in reply.inner_text()
    expect(page.locator("#stop")).to_be_hidden()


# ---------------------------------------------------------------- what users see

MARKDOWN_REPLY = """I looked at **acme/shop-api**: it is a *Flask* app served by `gunicorn`.

To run it on Cloud Run I will:

1. Build an image with the Dockerfile below
2. Push it to Artifact Registry
3. Deploy it as the service `shop-api`

```dockerfile
FROM python:3.12-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
CMD exec gunicorn --bind :$PORT app:app
```

Details: https://cloud.google.com/run/docs"""


def staged_conversation(session_id: str, turn: str) -> list[dict[str, Any]]:
    reply = f"{turn}-reply"
    return [
        {
            "type": "chat",
            "turn_id": turn,
            "message_id": turn,
            "role": "user",
            "final": True,
            "content": "Deploy github.com/acme/shop-api to Cloud Run, please.",
        },
        {"type": "typing", "turn_id": turn, "is_typing": True},
        {
            "type": "chat",
            "turn_id": turn,
            "message_id": reply,
            "role": "assistant",
            "delta": MARKDOWN_REPLY,
        },
        {
            "type": "chat",
            "turn_id": turn,
            "message_id": reply,
            "role": "assistant",
            "final": True,
            "content": MARKDOWN_REPLY,
        },
        {
            "type": "analysis",
            "turn_id": turn,
            "data": example_analysis(),
        },
        {
            "type": "deployment_update",
            "turn_id": turn,
            "deployment_id": "dep-1",
            "stage": "build",
            "progress": 35,
            "message": "Building the container image…",
        },
        {
            "type": "deployment_update",
            "turn_id": turn,
            "deployment_id": "dep-1",
            "stage": "deploy",
            "progress": 80,
            "message": "Creating a new Cloud Run revision…",
        },
        {
            "type": "deployment_complete",
            "turn_id": turn,
            "deployment_id": "dep-1",
            "status": "succeeded",
            "url": "https://shop-api-7f3k2-uc.a.run.app",
            "message": "Revision shop-api-00001 is serving 100% of traffic.",
        },
        {"type": "typing", "turn_id": turn, "is_typing": False},
    ]


def example_analysis() -> dict[str, Any]:
    """The agent's real analysis of the shipped example, as the agent stores it."""
    from agent.tools import analyse_directory

    root = ARTIFACTS.parent / "examples" / "hello-flask"
    analysis = analyse_directory(root, source="./examples/hello-flask", name="hello-flask")
    data = analysis.model_dump(mode="json")
    data.pop("path")
    return data


def test_cards_and_a_screenshot_mid_conversation(
    page: Page, proxy: TcpProxy, stack: Stack, uid: str
) -> None:
    open_page(page, proxy)
    session = page.evaluate("window.deploychat.engine.sessionId")
    append_events(stack, session, staged_conversation(session, f"a-{uid}"))
    expect(page.locator("#log .card.result")).to_have_count(1)

    analysis = page.locator("#log .card.analysis")
    assert analysis.locator("dt").all_inner_texts()[:4] == [
        "App",
        "Source",
        "Language",
        "Framework",
    ]
    values = analysis.locator("dd").all_inner_texts()
    assert values[0] == "hello-flask" and values[1] == "./examples/hello-flask"
    assert values[3].startswith("flask")
    # Each finding shows where it was found.
    assert "app.py:" in " ".join(analysis.locator(".evidence").all_inner_texts())
    progress = page.locator('#log .deployment .progress[role="progressbar"]')
    expect(progress).to_have_attribute("aria-valuenow", "100")
    link = page.locator("#log .card.result a")
    expect(link).to_have_attribute("href", "https://shop-api-7f3k2-uc.a.run.app/")
    expect(page.locator("#log .code-block code")).to_contain_text("FROM python:3.12-slim")
    expect(page.locator("#log ol li")).to_have_count(3)

    # A second turn, caught while its answer is still being written.
    turn = f"b-{uid}"
    append_events(
        stack,
        session,
        [
            {
                "type": "chat",
                "turn_id": turn,
                "message_id": turn,
                "role": "user",
                "final": True,
                "content": "Great! Can you also add a custom domain?",
            },
            {"type": "typing", "turn_id": turn, "is_typing": True},
            {
                "type": "chat",
                "turn_id": turn,
                "message_id": f"{turn}-reply",
                "role": "assistant",
                "delta": "Sure. Cloud Run can map **shop.acme.com** to the service once you have ",
            },
        ],
    )
    expect(page.locator("#stop")).to_be_visible()
    expect(page.locator("#log li.msg.assistant.streaming")).to_have_count(1)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(500)  # let the progress bar's transition finish
    page.screenshot(path=str(ARTIFACTS / "page.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "page-mobile.png"))

    # A reload shows the same conversation again, from the server's history.
    page.reload()
    wait_state(page, "connected")
    expect(page.locator("#log .card.result")).to_have_count(1)
    expect(page.locator("#log li.msg.user")).to_have_count(2)
