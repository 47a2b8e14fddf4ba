"""`deploychat send` and `deploychat chat` as a user runs them: a subprocess against the stack."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploychat.client.text import TranscriptPrinter, event_line
from deploychat.protocol import (
    AnalysisEvent,
    ChatEvent,
    DeploymentCompleteEvent,
    DeploymentUpdateEvent,
    ErrorEvent,
)
from devstack.processes import free_port
from tests.support.fake_gemini import FakeGemini, Reply, Script

ROOT = Path(__file__).resolve().parents[2]


def deploychat(
    *args: str, timeout: float = 60, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploychat.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        env=None if env is None else {**os.environ, **env},
    )


class Interactive:
    """`deploychat chat` with its output collected as it comes (replies stream mid-line)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deploychat.cli", "chat", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        self.out = ""
        self.err = ""
        self._lock = threading.Lock()
        for stream, name in ((self.proc.stdout, "out"), (self.proc.stderr, "err")):
            threading.Thread(target=self._collect, args=(stream, name), daemon=True).start()

    def _collect(self, stream: io.BufferedReader, name: str) -> None:
        while chunk := os.read(stream.fileno(), 4096):
            with self._lock:
                setattr(self, name, getattr(self, name) + chunk.decode(errors="replace"))

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def wait_until(self, done: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"stdout={self.out!r} stderr={self.err!r}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture(autouse=True)
def _own_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's CLI keeps its sign-ins in a folder of its own, never the user's."""
    folder = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    for name in ("DEPLOYCHAT_URL", "DEPLOYCHAT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.fixture
def interactive() -> Iterator[Callable[..., Interactive]]:
    started: list[Interactive] = []

    def start(*args: str) -> Interactive:
        started.append(Interactive(*args))
        return started[-1]

    yield start
    for chat in started:
        chat.stop()


# ---------------------------------------------------------------- send


def test_send_prints_the_streamed_reply_and_exits_0(
    ws_url: str, fake_gemini: FakeGemini, uid: str, tmp_path: Path
) -> None:
    fake_gemini.script(
        uid, Script(replies=[Reply(chunks=["Hello", " from", " the agent"], delay_s=0.05)])
    )
    state = tmp_path / "state.json"
    first = deploychat("send", "--url", ws_url, "--state", str(state), f"hi [[{uid}]]")
    assert first.returncode == 0, first.stderr
    assert first.stdout == "Hello from the agent\n"
    assert "[session " in first.stderr

    # The state file continues the session: the model sees the first exchange as history.
    second = deploychat("send", "--url", ws_url, "--state", str(state), f"again [[{uid}]]")
    assert second.returncode == 0, second.stderr
    assert second.stdout == "Hello from the agent\n"
    history = fake_gemini.calls_for(uid)[1].body["contents"]
    assert [c["role"] for c in history] == ["user", "model", "user"]


def test_send_exits_non_zero_when_the_turn_fails(
    ws_url: str, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(uid, Script(always_error=400))
    result = deploychat("send", "--url", ws_url, f"break [[{uid}]]")
    assert result.returncode == 1, result
    assert "the turn failed: agent_failed" in result.stderr


def test_send_exits_non_zero_when_it_cannot_connect() -> None:
    url = f"ws://127.0.0.1:{free_port()}/ws/chat"
    started = time.monotonic()
    result = deploychat("send", "--url", url, "--attempts", "2", "--backoff", "0.05", "hello")
    assert result.returncode == 3
    assert f"could not connect to {url} after 2 attempts" in result.stderr
    assert result.stdout == ""
    assert time.monotonic() - started < 15


def test_send_refuses_an_empty_message() -> None:
    result = deploychat("send", "   ")
    assert result.returncode == 2 and "empty" in result.stderr


# ---------------------------------------------------------------- chat


def test_chat_streams_replies_and_quits_at_end_of_input(
    ws_url: str, uid: str, interactive: Callable[..., Interactive]
) -> None:
    chat = interactive("--url", ws_url)
    chat.type(f"first [[{uid}]]")
    chat.wait_until(lambda: f"Echo: first [[{uid}]]\n" in chat.out)
    chat.type(f"second [[{uid}]]")
    chat.wait_until(lambda: f"Echo: second [[{uid}]]\n" in chat.out)
    assert chat.proc.stdin is not None
    chat.proc.stdin.close()  # Ctrl-D
    assert chat.proc.wait(timeout=15) == 0
    assert "[connected · session " in chat.err
    # A later `chat --session` shows the conversation so far.
    session = chat.err.split("[connected · session ", 1)[1].split("]", 1)[0]
    again = interactive("--url", ws_url, "--session", session)
    again.wait_until(lambda: f"Echo: second [[{uid}]]\n" in again.out)
    assert again.out.startswith(f"> first [[{uid}]]\nEcho: first [[{uid}]]\n> second")


def test_ctrl_c_stops_the_reply_and_twice_quits(
    ws_url: str, fake_gemini: FakeGemini, uid: str, interactive: Callable[..., Interactive]
) -> None:
    words = [f"word{i} " for i in range(60)]
    fake_gemini.script(uid, Script(replies=[Reply(chunks=words, delay_s=0.1)]))
    chat = interactive("--url", ws_url)
    chat.type(f"talk a lot [[{uid}]]")
    chat.wait_until(lambda: "word1 " in chat.out)
    chat.proc.send_signal(signal.SIGINT)
    chat.wait_until(lambda: "[stopped]\n" in chat.out)
    assert "word59" not in chat.out
    assert chat.proc.poll() is None, "one Ctrl-C stops the reply, not the program"
    time.sleep(2.1)  # not a double press with the first one
    chat.proc.send_signal(signal.SIGINT)
    time.sleep(0.2)  # two signals sent together may arrive as one
    chat.proc.send_signal(signal.SIGINT)
    assert chat.proc.wait(timeout=15) == 0


# ---------------------------------------------------------------- how events read


def test_analysis_and_deployment_events_are_one_readable_line_each() -> None:
    analysis = AnalysisEvent(
        seq=1,
        turn_id="t",
        data={
            "port": 8080,
            "framework": "flask",
            "language": "python",
            "start_command": "gunicorn app:app",
            "env": ["PORT", "DEBUG"],
            "extra": {"b": 1},
        },
    )
    assert event_line(analysis) == (
        "analysis: language=python, framework=flask, start_command=gunicorn app:app, port=8080, "
        'env=PORT/DEBUG, extra={"b":1}'
    )
    agents = AnalysisEvent(
        seq=1,
        turn_id="t",
        data={
            "name": "hello-flask",
            "language": "python",
            "language_version": "3.12",
            "framework": "flask",
            "package_manager": "pip",
            "start_command": "gunicorn app:app",
            "port": 8080,
            "env_vars": [{"name": "PORT", "evidence": []}, {"name": "GREETING", "evidence": []}],
            "evidence": {"port": [{"file": "app.py", "line": 3, "snippet": "x"}]},
        },
    )
    assert event_line(agents) == (
        "analysis: hello-flask: python 3.12 flask, pip, start `gunicorn app:app`, port 8080, "
        "env PORT, GREETING"
    )
    update = DeploymentUpdateEvent(
        seq=2,
        turn_id="t",
        deployment_id="d1",
        stage="build",
        progress=40,
        message="Building the image",
    )
    assert event_line(update) == "deploy d1 [ 40%] build: Building the image"
    done = DeploymentCompleteEvent(
        seq=3,
        turn_id="t",
        deployment_id="d1",
        status="succeeded",
        url="https://app-xyz.a.run.app",
        message="Live",
    )
    assert event_line(done) == "deploy d1 succeeded https://app-xyz.a.run.app: Live"
    error = ErrorEvent(seq=4, turn_id="t", code="model_unavailable", message="busy", retryable=True)
    assert event_line(error) == "error model_unavailable (retryable): busy"


def test_the_final_text_wins_over_pieces_that_differ() -> None:
    out = io.StringIO()
    printer = TranscriptPrinter(out)
    piece = ChatEvent(seq=1, turn_id="t", message_id="t-reply", role="assistant", delta="Hel")
    printer.event(piece)
    printer.event(piece.model_copy(update={"seq": 2, "delta": "lo"}))
    printer.event(
        ChatEvent(
            seq=3, turn_id="t", message_id="t-reply", role="assistant", content="Hello!", final=True
        )
    )
    printer.event(
        ChatEvent(seq=4, turn_id="u", message_id="u-reply", role="assistant", delta="Wrong")
    )
    printer.event(
        ChatEvent(
            seq=5,
            turn_id="u",
            message_id="u-reply",
            role="assistant",
            content="Right",
            final=True,
            stopped=True,
        )
    )
    assert out.getvalue() == "Hello!\nWrong\n[the reply was revised]\nRight [stopped]\n"
