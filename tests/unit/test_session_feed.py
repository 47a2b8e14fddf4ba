from __future__ import annotations

import threading
import time

from deploychat.protocol import SessionEvent, TypingEvent
from edge.session_stream import SessionFeed
from edge.settings import EdgeSettings


def ev(seq: int) -> TypingEvent:
    return TypingEvent(seq=seq, turn_id="t", is_typing=True)


class FakeStore:
    def __init__(self, stored: list[SessionEvent]) -> None:
        self.stored = stored
        self.reads: list[int] = []

    def read_events(self, session_id: str, after_seq: int, limit: int) -> list[SessionEvent]:
        self.reads.append(after_seq)
        return [e for e in self.stored if e.seq > after_seq][:limit]


def feed_with(stored: list[SessionEvent], buffer: int = 256) -> tuple[SessionFeed, FakeStore]:
    store = FakeStore(stored)
    settings = EdgeSettings(feed_buffer=buffer, replay_page_size=3)
    return SessionFeed("session-x", store, settings), store  # type: ignore[arg-type]


def alive() -> bool:
    return True


def test_live_events_come_from_memory() -> None:
    feed, store = feed_with([])
    feed.ingest([ev(2), ev(1)])
    assert feed.next_batch(0, 1, alive) == ([ev(1), ev(2)], 2)
    assert store.reads == []


def test_a_socket_behind_the_memory_reads_firestore_in_pages() -> None:
    stored: list[SessionEvent] = [ev(n) for n in range(1, 8)]
    feed, store = feed_with(stored, buffer=2)
    feed.ingest(stored)  # only 6 and 7 stay in memory
    assert feed.next_batch(0, 1, alive) == (stored[:3], 3)
    assert feed.next_batch(3, 1, alive) == (stored[3:6], 6)
    assert feed.next_batch(6, 1, alive) == ([ev(7)], 7)
    assert store.reads == [0, 3]


def test_a_hole_in_memory_is_filled_from_firestore() -> None:
    stored: list[SessionEvent] = [ev(n) for n in range(1, 5)]
    feed, store = feed_with(stored)
    feed.ingest([ev(1), ev(3), ev(4)])  # the listener's window skipped 2
    events, cursor = feed.next_batch(0, 1, alive)
    assert [e.seq for e in events] == [1, 2, 3] and cursor == 3
    assert store.reads == [0]


def test_the_seq_from_the_session_document_triggers_a_catch_up() -> None:
    feed, _ = feed_with([ev(1), ev(2)])
    feed.note_last_seq(2)
    assert feed.next_batch(0, 1, alive) == ([ev(1), ev(2)], 2)


def test_events_gone_from_firestore_are_passed_over() -> None:
    feed, _ = feed_with([])
    feed.note_last_seq(5)
    assert feed.next_batch(0, 1, alive) == ([], 5)


def test_waits_for_new_events_and_times_out() -> None:
    feed, _ = feed_with([])
    started = time.monotonic()
    assert feed.next_batch(0, 0.2, alive) == ([], 0)
    assert time.monotonic() - started >= 0.2
    threading.Timer(0.1, feed.ingest, args=([ev(1)],)).start()
    assert feed.next_batch(0, 5, alive) == ([ev(1)], 1)


def test_a_closed_socket_stops_waiting() -> None:
    feed, _ = feed_with([])
    is_open = [True]
    threading.Timer(0.1, lambda: (is_open.__setitem__(0, False), feed.wake())).start()
    started = time.monotonic()
    assert feed.next_batch(0, 5, lambda: is_open[0]) == ([], 0)
    assert time.monotonic() - started < 2
