from __future__ import annotations

from typing import Any

from agent.turn_runner import PieceWriter


class FakeLog:
    def __init__(self, cancel_after: int | None = None) -> None:
        self.appended: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []
        self.cancel_after = cancel_after

    def append(self, drafts: list[dict[str, Any]], progress: dict[str, Any]) -> bool:
        self.appended.append((drafts, progress))
        return self.cancel_after is not None and len(self.appended) >= self.cancel_after


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _deltas(log: FakeLog) -> list[str]:
    return [d["delta"] for drafts, _ in log.appended for d in drafts]


def test_first_piece_at_once_then_at_most_one_per_interval() -> None:
    log, clock = FakeLog(), Clock()
    writer = PieceWriter(log, "t", "", 0.15, clock)  # type: ignore[arg-type]
    for i, text in enumerate(["a", "b", "c", "d", "e"]):
        clock.now = i * 0.05
        writer.add(text)
    writer.flush()
    assert _deltas(log) == ["a", "bcd", "e"]
    assert log.appended[-1][1] == {"emitted_text": "abcde"}
    assert writer.shown == writer.full == "abcde"


def test_a_retry_sends_only_what_the_clients_do_not_have() -> None:
    log, clock = FakeLog(), Clock()
    writer = PieceWriter(log, "t", "Hello, wor", 0.0, clock)  # type: ignore[arg-type]
    for text in ["Hel", "lo, ", "world", "!"]:
        writer.add(text)
    assert _deltas(log) == ["ld", "!"]
    assert writer.full == "Hello, world!"


def test_a_retry_that_answers_differently_sends_no_more_pieces() -> None:
    log, clock = FakeLog(), Clock()
    writer = PieceWriter(log, "t", "Hello", 0.0, clock)  # type: ignore[arg-type]
    for text in ["Goodbye", " now"]:
        writer.add(text)
    writer.flush()
    assert log.appended == []
    assert writer.full == "Goodbye now" and writer.shown == "Hello"


def test_a_cancel_is_reported_by_the_append_that_sees_it() -> None:
    log, clock = FakeLog(cancel_after=2), Clock()
    writer = PieceWriter(log, "t", "", 0.0, clock)  # type: ignore[arg-type]
    assert writer.add("a") is False
    assert writer.add("b") is True
    assert writer.shown == "ab"
