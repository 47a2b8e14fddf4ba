"""History sent to the model: strict alternation, a budget, and the session's state."""

from __future__ import annotations

from agent.history import (
    NO_ANSWER,
    STOPPED_EARLY,
    Said,
    alternating,
    compact,
    session_notes,
)
from agent.model import HistoryMessage
from agent.turn_runner import PieceWriter


def _roles(messages: list[HistoryMessage]) -> list[str]:
    return [m.role for m in messages]


def test_a_failed_turn_gets_a_placeholder_answer() -> None:
    said = [
        Said("a", "user", "one"),
        Said("a", "assistant", "answer one"),
        Said("b", "user", "two (failed)"),
        Said("c", "user", "three"),
        Said("c", "assistant", "answer three"),
        Said("d", "user", "four (failed too)"),
    ]
    history = alternating(said)
    assert _roles(history) == ["user", "assistant"] * 4
    assert history[3] == HistoryMessage("assistant", NO_ANSWER)
    assert history[-1] == HistoryMessage("assistant", NO_ANSWER)


def test_an_answer_cancelled_before_it_began_is_said_to_be() -> None:
    history = alternating([Said("a", "user", "hi"), Said("a", "assistant", "", stopped=True)])
    assert history[1] == HistoryMessage("assistant", STOPPED_EARLY)


def test_a_window_that_starts_mid_exchange_starts_with_the_user() -> None:
    history = alternating([Said("a", "assistant", "late"), Said("b", "user", "hi")])
    assert _roles(history) == ["user", "assistant"]


def test_compact_keeps_the_newest_exchanges_and_says_what_it_left_out() -> None:
    messages = []
    for i in range(10):
        messages += [HistoryMessage("user", f"q{i} " * 50), HistoryMessage("assistant", "a" * 300)]
    kept = compact(messages, 2000)
    assert _roles(kept) == ["user", "assistant"] * (len(kept) // 2)
    assert kept[0].text.startswith("(Earlier in this conversation:")
    assert kept[-2].text.startswith("q9")
    assert sum(len(m.text) for m in kept[2:]) <= 2000


def test_compact_cuts_a_long_message() -> None:
    kept = compact([HistoryMessage("user", "x" * 10_000), HistoryMessage("assistant", "ok")], 9000)
    assert kept[0].text.endswith(" […]") and len(kept[0].text) < 4100


SESSION = {
    "workspace": {
        "source": "./examples/hello-flask",
        "analysis": {
            "name": "hello-flask",
            "language": "python",
            "framework": "flask",
            "start_command": "gunicorn app:app",
            "port": 8000,
            "evidence": [{"file": "app.py", "why": "imports flask"}],
            "env_vars": [{"name": "SECRET_KEY"}],
        },
        "dockerfile": "FROM python:3.12-slim\nCMD gunicorn app:app\n",
    }
}


def test_the_summary_holds_the_analysis_the_dockerfile_and_deployments() -> None:
    deployments = [
        {"deployment_id": f"d{i}", "status": "succeeded", "url": f"http://x/{i}", "message": "ok"}
        for i in range(7)
    ]
    notes = session_notes(SESSION, deployments)
    text = "\n".join(notes)
    assert '"start_command": "gunicorn app:app"' in text and "SECRET_KEY" in text
    assert "evidence" not in text
    assert "FROM python:3.12-slim" in text
    assert "http://x/6" in text and "http://x/1" not in text  # the latest five


def test_the_summary_fits_its_budget_dropping_the_dockerfile_text_first() -> None:
    notes = session_notes(SESSION, [], char_budget=300)
    assert sum(len(n) + 1 for n in notes) <= 300
    assert "FROM python" not in "".join(notes)
    assert any("hello-flask" in n for n in notes)


class _Log:
    def __init__(self) -> None:
        self.deltas: list[str] = []

    def append(self, drafts: list[dict[str, object]], progress: dict[str, object]) -> bool:
        self.deltas += [str(d["delta"]) for d in drafts]
        return False


def test_a_retried_step_does_not_repeat_text() -> None:
    log = _Log()
    writer = PieceWriter(log, "t", "", 0.0, lambda: 0.0)  # type: ignore[arg-type]
    writer.add("Intro. ")
    start = len(writer.full)
    writer.add("Hello, wor")
    writer.rewind(start)  # the stream was cut and is asked again
    for piece in ["Hello, ", "world!"]:
        writer.add(piece)
    assert writer.full == "Intro. Hello, world!"
    assert "".join(log.deltas) == writer.full
    assert writer.kept() == writer.full
