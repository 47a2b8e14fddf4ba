"""`make dev` as a newcomer runs it (python -m devstack, the real thing, in a process of its
own), with the page in a real Chromium: the edge killed comes back by itself and the page
reconnects; the stack stopped and started again still has the conversation; stopping takes
under 10 s; and devstack killed outright takes its services with it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from devstack.processes import free_port
from tests.conftest import ARTIFACTS
from tests.e2e.test_page import send, wait_passed, wait_state

ROOT = Path(__file__).resolve().parents[2]
READY = "Ctrl-C stops everything."
# The stack's own emulators and services; nothing of the test run's stack leaks in.
DROP = (
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "DEPLOYCHAT_GEMINI_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "PUBSUB_EMULATOR_HOST",
    "FIRESTORE_EMULATOR_HOST",
    "FIREBASE_AUTH_EMULATOR_HOST",
)


class DevStack:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.auth_port = free_port()
        self.data = tmp / "data"
        self.logs = tmp / "logs"
        self.out = tmp / "devstack.out"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 300) -> None:
        env = {k: v for k, v in os.environ.items() if k not in DROP}
        self.offset = self.out.stat().st_size if self.out.exists() else 0
        with open(self.out, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "devstack",
                    "--quiet",
                    f"--port={self.port}",
                    f"--auth-port={self.auth_port}",
                    f"--data-dir={self.data}",
                    f"--log-dir={self.logs}",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.wait_for(READY, timeout)

    def output(self) -> str:
        return self.out.read_bytes()[self.offset :].decode(errors="replace")

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.proc is not None and self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output()}"
            time.sleep(0.2)

    def edge_group(self) -> int:
        """The edge's process group: its gunicorn, found by the port it was given."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmd = (entry / "cmdline").read_bytes()
                if b"edge.wsgi:app" not in cmd:
                    continue
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"PORT={self.port}".encode() in environ:
                return os.getpgid(int(entry.name))
        raise AssertionError("no edge process found")

    def stop(self, sig: int = signal.SIGTERM) -> float:
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(30)
        return time.monotonic() - started

    def kill_all(self) -> None:
        """Last resort for a failed test: the reaper does the rest."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_closed(ports: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(listening(p) for p in ports):
        assert time.monotonic() < deadline, [p for p in ports if listening(p)]
        time.sleep(0.1)


def open_dev_page(page: Page, stack: DevStack) -> None:
    page.goto(
        f"http://127.0.0.1:{stack.port}/?backoff_ms=500&max_backoff_ms=3000&max_attempts=60"
        "&jitter=0.1&connect_timeout_ms=5000"
    )
    page.wait_for_function("() => window.deploychat.ready === true", timeout=60_000)
    wait_state(page, "connected", timeout=60_000)


# Two whole stacks start one after the other: minutes on a busy machine.
@pytest.mark.timeout(1200)
def test_make_dev_heals_a_dead_edge_keeps_the_history_and_stops_cleanly(
    browser: Browser, tmp_path: Path
) -> None:
    dev = DevStack(tmp_path)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        dev.start()
        assert f"Auth emulator    http://127.0.0.1:{dev.auth_port}" in dev.output()
        open_dev_page(page, dev)
        expect(page.locator("#mode")).to_have_text("offline mode")
        send(page, "help")
        replies = page.locator('#log li.msg.assistant[data-final="true"]')
        expect(replies).to_have_count(1, timeout=60_000)
        expect(replies.first).to_contain_text("Offline mode")

        # The edge dies at whatever line it was on; the rest of the stack keeps running.
        since = page.evaluate("window.deploychat.states.length")
        os.killpg(dev.edge_group(), signal.SIGKILL)
        wait_passed(page, "reconnecting", since, timeout=30_000)
        dev.wait_for("ws_edge exited", 30)
        dev.wait_for("restarting it in", 5)
        wait_state(page, "connected", timeout=120_000)
        dev.wait_for("ws_edge is back", 60)
        send(page, "analyse ./examples/hello-flask")
        expect(page.locator("#log .card.analysis")).to_have_count(1, timeout=90_000)
        expect(replies).to_have_count(2, timeout=60_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "devstack-after-edge-restart.png"))
        session = page.evaluate("window.deploychat.engine.sessionId")

        # Ctrl-C (SIGTERM here): everything stops within 10 s, and the data is kept.
        took = dev.stop(signal.SIGTERM)
        assert took < 10, took
        assert "saved the emulators' data" in dev.output()
        wait_closed([dev.port, dev.auth_port], 5)
        wait_state(page, "reconnecting", timeout=30_000)

        # make dev again: the same user, the same conversation, replayed.
        dev.start()
        assert "restoring the data kept in" in dev.output()
        page.reload()
        open_dev_page(page, dev)
        assert page.evaluate("window.deploychat.engine.sessionId") == session
        expect(page.locator("#log li.msg.user .bubble")).to_have_text(
            ["help", "analyse ./examples/hello-flask"], timeout=60_000
        )
        expect(page.locator("#log .card.analysis")).to_have_count(1)
        expect(page.locator("#intro-notice")).to_be_hidden()
        expect(page.locator("#sessions button.session")).to_have_count(1, timeout=20_000)
        page.screenshot(path=str(ARTIFACTS / "devstack-after-restart.png"))

        # devstack killed outright: its services die with it (the reaper).
        dev.stop(signal.SIGKILL)
        wait_closed([dev.port, dev.auth_port], 10)
    finally:
        context.close()
        dev.kill_all()
