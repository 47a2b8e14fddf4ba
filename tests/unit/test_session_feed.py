from __future__ import annotations

from deploychat.protocol import SessionEvent, TypingEvent
from edge.session_stream import SessionFeed
from edge.settings import EdgeSettings


def ev(seq: int) -> TypingEvent:
    return TypingEvent(seq=seq, turn_id="t", is_typing=True)


class FakeStore:
    def __init__(self, stored: list[SessionEvent]) -> None:
        self.stored = stored
        self.reads: list[int] = []

    def read_events(
        self, session_id: str, after_seq: int, upto: int, limit: int
    ) -> tuple[list[SessionEvent], int]:
        # As the real store does: by seq, after_seq + 1 .. min(upto, after_seq + limit).
        self.reads.append(after_seq)
        last = min(upto, after_seq + limit)
        return [e for e in self.stored if after_seq < e.seq <= last], last


class Kicks:
    def __init__(self) -> None:
        self.count = 0

    def kick(self) -> None:
        self.count += 1


def feed_with(stored: list[SessionEvent], buffer: int = 256) -> tuple[SessionFeed, FakeStore]:
    store = FakeStore(stored)
    settings = EdgeSettings(feed_buffer=buffer, replay_page_size=3)
    return SessionFeed("session-x", store, settings), store  # type: ignore[arg-type]


def test_live_events_come_from_memory() -> None:
    feed, store = feed_with([])
    feed.ingest([ev(2), ev(1)])
    assert feed.take(0) == ([ev(1), ev(2)], 2)
    assert feed.take(2) == ([], 2)
    assert store.reads == []


def test_a_socket_behind_the_memory_reads_firestore_in_pages() -> None:
    stored: list[SessionEvent] = [ev(n) for n in range(1, 8)]
    feed, store = feed_with(stored, buffer=2)
    feed.ingest(stored)  # only 6 and 7 stay in memory
    assert feed.take(0) == (stored[:3], 3)
    assert feed.take(3) == (stored[3:6], 6)
    assert feed.take(6) == ([ev(7)], 7)
    assert store.reads == [0, 3]


def test_a_hole_in_memory_is_filled_from_firestore_and_remembered() -> None:
    stored: list[SessionEvent] = [ev(n) for n in range(1, 5)]
    feed, store = feed_with(stored)
    feed.ingest([ev(1), ev(3), ev(4)])  # the listener's window skipped 2
    events, cursor = feed.take(0)
    assert [e.seq for e in events] == [1, 2, 3] and cursor == 3  # one page
    assert feed.take(3) == ([ev(4)], 4)
    assert feed.take(0) == (stored, 4), "the read filled the memory for other sockets"
    assert store.reads == [0]


def test_the_seq_from_the_session_document_triggers_a_catch_up() -> None:
    feed, _ = feed_with([ev(1), ev(2)])
    feed.note_last_seq(2)
    assert feed.take(0) == ([ev(1), ev(2)], 2)


def test_events_gone_from_firestore_are_passed_over() -> None:
    feed, _ = feed_with([])
    feed.note_last_seq(5)
    assert feed.take(0) == ([], 3)  # a page at a time (replay_page_size=3)
    assert feed.take(3) == ([], 5)


def test_subscribers_are_kicked_when_the_feed_learns_of_more() -> None:
    feed, _ = feed_with([])
    sub = Kicks()
    feed.subscribe(sub)
    assert sub.count == 1
    feed.ingest([ev(1)])
    feed.ingest([ev(1)])  # nothing new: no kick
    feed.note_last_seq(1)
    feed.note_last_seq(3)
    assert sub.count == 3
    feed.unsubscribe(sub)
    feed.ingest([ev(4)])
    assert sub.count == 3


def test_the_session_document_brings_its_tail_and_its_last_seq() -> None:
    feed, store = feed_with([ev(n) for n in range(1, 4)])
    sub = Kicks()
    feed.subscribe(sub)
    feed.on_session(3, [ev(3)])  # the listener skipped the versions that carried 1 and 2
    assert sub.count == 2
    assert feed.take(0) == ([ev(1), ev(2), ev(3)], 3)
    assert store.reads == [0]
    feed.on_session(3, [ev(3)])  # the same document again (an edge wrote updated_at)
    assert sub.count == 2


def test_a_page_whose_end_is_gone_moves_the_cursor_past_it() -> None:
    feed, _ = feed_with([ev(1), ev(2)])  # 3 expired
    feed.note_last_seq(4)
    assert feed.take(0) == ([ev(1), ev(2)], 3)
    assert feed.take(3) == ([], 4)
