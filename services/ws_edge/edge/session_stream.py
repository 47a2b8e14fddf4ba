"""Streams a session's stored events to its sockets: replay and live through one path.

Each socket keeps a cursor, the highest `seq` it has sent. One `SessionFeed` per session and
process learns of new events from a Firestore listener on the session document (its `last_seq`
and the events of its last append, `tail`), and keeps the most recent ones in memory. When it
learns of a higher `seq` it kicks its sockets; a socket then takes the events after its cursor
from that memory when they are all there, and otherwise (it is replaying after a reconnect, or
the listener skipped a version of the document) reads them from Firestore by `seq`, as document
ids. Events are only ever sent as `cursor + 1, cursor + 2, ...`, so there is no gap and no
repeat at the seam between replay and live, whatever order the listener and the reads answer in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Protocol

from deploychat.protocol import SessionEvent

from .session_store import SessionStore, Unsubscribe
from .settings import EdgeSettings

log = logging.getLogger(__name__)


class Drainable(Protocol):
    def close(self, code: int, reason: str) -> None: ...

    def drain(self, code: int, reason: str, write_timeout_s: float) -> None: ...

    def abort(self) -> None: ...


class Subscriber(Protocol):
    def kick(self) -> None:
        """New events may be there: send them (without blocking the caller)."""
        ...


class SessionFeed:
    def __init__(self, session_id: str, store: SessionStore, settings: EdgeSettings) -> None:
        self.session_id = session_id
        self._store = store
        self._settings = settings
        self._lock = threading.Lock()
        self._high = 0
        self._recent: OrderedDict[int, SessionEvent] = OrderedDict()
        self._subscribers: set[Subscriber] = set()
        self._watch: Unsubscribe | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self.refs = 0
        self.idle_since = time.monotonic()

    @property
    def high(self) -> int:
        return self._high

    def ensure_started(self) -> None:
        with self._start_lock:
            if self._watch is None and not self._closed:
                self._watch = self._store.watch(self.session_id, self.on_session)

    def stop(self) -> None:
        with self._start_lock:
            watch, self._watch = self._watch, None
            self._closed = True
        if watch is not None:
            watch.unsubscribe()

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.add(subscriber)
        subscriber.kick()

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(subscriber)

    def note_last_seq(self, seq: int) -> None:
        """A committed `seq` learnt elsewhere (the session document)."""
        with self._lock:
            if seq <= self._high:
                return
            self._high = seq
        self._kick()

    def on_session(self, last_seq: int, events: list[SessionEvent]) -> None:
        """The session document as the listener saw it: its `last_seq` and the events of its
        last append (possibly not all of them, possibly known already)."""
        with self._lock:
            before = self._high
            self._remember(events)
            self._high = max(self._high, last_seq)
            grew = self._high > before
        if grew:
            self._kick()

    def ingest(self, events: list[SessionEvent]) -> None:
        """Events learnt without the session's `last_seq` (any order, possibly known)."""
        self.on_session(0, events)

    def take(self, cursor: int) -> tuple[list[SessionEvent], int]:
        """The events after `cursor` that are known to exist, and the cursor after them.

        From memory when it holds all of them, else from Firestore (a page at a time). The new
        cursor may pass events that are gone from Firestore (expired by TTL).
        """
        with self._lock:
            high = self._high
            if high <= cursor:
                return [], cursor
            batch: list[SessionEvent] = []
            seq = cursor + 1
            while seq <= high and seq in self._recent:
                batch.append(self._recent[seq])
                seq += 1
        if batch and batch[-1].seq == high:
            return batch, high
        events, upto = self._store.read_events(
            self.session_id, cursor, high, self._settings.replay_page_size
        )
        if not events:
            log.warning("session %s: events %d..%d are gone", self.session_id, cursor + 1, upto)
            return [], upto
        with self._lock:
            # Kept for the session's other sockets, which are likely just as far behind.
            self._remember(events)
        # Past the last one read if the rest of the page is gone (expired: TTL).
        return events, upto

    def _remember(self, events: list[SessionEvent]) -> None:
        for event in events:
            self._recent[event.seq] = event
            self._high = max(self._high, event.seq)
        if len(self._recent) > self._settings.feed_buffer:
            for seq in sorted(self._recent)[: len(self._recent) - self._settings.feed_buffer]:
                del self._recent[seq]

    def _kick(self) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.kick()


class SessionHub:
    """The feeds of this process, one per session with sockets, and the sockets to drain."""

    def __init__(self, store: SessionStore, settings: EdgeSettings) -> None:
        self._store = store
        self._settings = settings
        self._feeds: dict[str, SessionFeed] = {}
        self._lock = threading.Lock()
        self._sweeper: threading.Thread | None = None
        self._connections: set[Drainable] = set()

    def acquire(self, session_id: str) -> SessionFeed:
        with self._lock:
            feed = self._feeds.get(session_id)
            if feed is None:
                feed = self._feeds[session_id] = SessionFeed(
                    session_id, self._store, self._settings
                )
            feed.refs += 1
            self._start_sweeper()
        feed.ensure_started()
        return feed

    def release(self, feed: SessionFeed) -> None:
        with self._lock:
            feed.refs -= 1
            if feed.refs == 0:
                # Kept a while: a reconnecting socket finds the listener warm.
                feed.idle_since = time.monotonic()

    def sweep(self) -> None:
        cutoff = time.monotonic() - self._settings.feed_linger_s
        with self._lock:
            idle = [f for f in self._feeds.values() if f.refs == 0 and f.idle_since <= cutoff]
            for feed in idle:
                del self._feeds[feed.session_id]
        for feed in idle:
            feed.stop()

    def feeds(self) -> int:
        return len(self._feeds)

    def _start_sweeper(self) -> None:
        if self._sweeper is None:
            self._sweeper = threading.Thread(
                target=self._sweep_forever, daemon=True, name="sweeper"
            )
            self._sweeper.start()

    def _sweep_forever(self) -> None:
        interval = max(0.5, self._settings.feed_linger_s / 2)
        while True:
            time.sleep(interval)
            try:
                self.sweep()
            except Exception:
                log.exception("sweeping session feeds failed")

    # ---------------------------------------------------------------- draining

    def register(self, conn: Drainable) -> None:
        with self._lock:
            self._connections.add(conn)

    def unregister(self, conn: Drainable) -> None:
        with self._lock:
            self._connections.discard(conn)

    def drain(self, code: int, reason: str) -> int:
        """Close every socket with `code` (1012 when this instance shuts down), all at once.

        Each close frame may take `drain_timeout_s` to go out once written; a client that does
        not take it by then is dropped, so one that stopped reading delays nobody.
        """
        with self._lock:
            connections = list(self._connections)
        try:
            import gevent
            from gevent import monkey
        except ImportError:  # pragma: no cover
            gevent = None
        if gevent is None or not monkey.is_module_patched("socket"):
            for conn in connections:
                conn.close(code, reason)
            return len(connections)
        # Each close frame's write has drain_timeout_s from when it starts: with thousands of
        # sockets, a greenlet may wait longer than that for its turn, and that is no reason to
        # drop a client that reads. Those still unclosed after the closing handshake's limit
        # are dropped.
        timeout = self._settings.drain_timeout_s
        closing = [gevent.spawn(conn.drain, code, reason, timeout) for conn in connections]
        gevent.joinall(closing, timeout=self._settings.close_timeout_s)
        for conn, greenlet in zip(connections, closing, strict=True):
            if not greenlet.dead:
                greenlet.kill(block=False)
                conn.abort()
        return len(connections)

    def wait_empty(self, timeout: float) -> bool:
        """Until every socket has finished its closing handshake (or `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._connections:
                    return True
            time.sleep(0.05)
        return False
