"""The edge's reads and writes of sessions in Firestore (the agent writes the events)."""

from __future__ import annotations

import datetime
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from google.cloud import firestore
from pydantic import ValidationError

from deploychat.firestore_layout import (
    SEQ_WIDTH,
    SESSIONS,
    event_doc_id,
    events_ref,
    session_ref,
    turn_ref,
)
from deploychat.protocol import SESSION_EVENT, ErrorEvent, SessionEvent, is_reserved_id

from .identity import User
from .limits import CountedWindow, Kind, Window
from .listen_process import ListenProcess
from .settings import EdgeSettings

log = logging.getLogger(__name__)


class SessionNotYours(Exception):
    """The session does not exist, or belongs to another user (indistinguishable on purpose)."""


class Unsubscribe(Protocol):
    def unsubscribe(self) -> None: ...


class SessionStore:
    def __init__(self, settings: EdgeSettings, db: firestore.Client | None = None) -> None:
        self._settings = settings
        self._db = db
        self._listener: ListenProcess | None = None
        self._lock = threading.RLock()
        self._windows: dict[Kind, Window] = {
            "turns": Window("turns", settings.turns_per_minute, 60.0),
            "cancels": Window("cancels", settings.cancels_per_minute, 60.0),
            "sessions": Window("sessions", settings.sessions_per_hour, 3600.0),
        }

    @property
    def db(self) -> firestore.Client:
        with self._lock:
            if self._db is None:
                self._db = firestore.Client(
                    project=self._settings.project_id, database=self._settings.firestore_database
                )
            return self._db

    def open(self, session_id: str | None, user: User) -> tuple[str, int, bool]:
        """The user's session, or a new one: (session_id, last_seq, resumed).

        SessionNotYours for a session that does not exist or belongs to someone else: the same
        answer for both, so ids can't be probed. RateLimited past the new-sessions limit.
        """
        if session_id is not None:
            if is_reserved_id(session_id):
                raise SessionNotYours()
            snap = session_ref(self.db, session_id).get()
            doc = (snap.to_dict() or {}) if snap.exists else {}
            if not snap.exists or doc.get("owner_uid") != user.uid:
                raise SessionNotYours()
            return session_id, int(doc.get("last_seq", 0)), True
        return self._create(user), 0, False

    def _create(self, user: User) -> str:
        session_id = new_session_id()
        now = time.time()
        window = CountedWindow(self.db, user.uid, self._windows["sessions"], now)
        ref = session_ref(self.db, session_id)

        @firestore.transactional
        def create(txn: firestore.Transaction) -> None:
            window.read(txn)
            window.check(session_id)
            txn.create(
                ref,
                {
                    "last_seq": 0,
                    "owner_uid": user.uid,
                    "owner_email": user.email,
                    "owner_email_verified": user.email_verified,
                    "owner_provider": user.provider,
                    "title": None,
                    "created_at": now,
                    "updated_at": now,
                    "expire_at": _expiry(now, self._settings.session_ttl_days),
                },
            )
            window.write(txn, session_id)

        create(self.db.transaction())
        return session_id

    def accept_turn(self, session_id: str, user: User, turn_id: str, content: str) -> bool:
        """Record a chat turn before it is published; False if it was recorded before.

        One transaction: the per-user turn limit (RateLimited, with nothing written), the turn's
        record (what the agent and the sweeper read: its content, when it was accepted) and the
        session's title and time. A resent turn is not counted again.
        """
        now = time.time()
        window = CountedWindow(self.db, user.uid, self._windows["turns"], now)
        turn = turn_ref(self.db, session_id, turn_id)
        session = session_ref(self.db, session_id)
        # Read outside the transaction. Inside it, this read and the agent's (each append reads
        # and writes the session) would both hold the document shared and both wait to write
        # it: the emulator's locks deadlock until both time out, retry and meet again (seen on
        # CI: three queued chats, no turn done in 40 s). At worst a title comes from a later
        # turn.
        titled = bool((session.get().to_dict() or {}).get("title"))

        @firestore.transactional
        def accept(txn: firestore.Transaction) -> bool:
            window.read(txn)
            turn_snap = turn.get(transaction=txn)
            if turn_snap.exists:
                if (turn_snap.to_dict() or {}).get("status") == "unpublished":
                    # Sent again after its publish failed: its place in the order is now.
                    txn.update(turn, {"status": "accepted", "accepted_at": now})
                return False
            window.check(f"{session_id}/{turn_id}")
            txn.create(
                turn,
                {
                    "content": content,
                    "accepted_at": now,
                    "status": "accepted",
                    "owner_uid": user.uid,
                    "expire_at": _expiry(now, self._settings.session_ttl_days),
                },
            )
            update: dict[str, Any] = {"updated_at": now}
            if not titled:
                update["title"] = _title(content)
            txn.update(session, update)
            window.write(txn, f"{session_id}/{turn_id}")
            return True

        accepted: bool = accept(self.db.transaction())
        return accepted

    def mark_unpublished(self, session_id: str, turn_id: str) -> None:
        """The turn's publish failed and the client got no ack: it holds no later turn back
        (agent/event_store.py) until the client sends it again. Best effort: the agent waits
        at most its lease behind a turn left `accepted`."""
        ref = turn_ref(self.db, session_id, turn_id)
        try:
            snap = ref.get()
            # A publish that timed out may still have gone through: a turn the agent has
            # started is left alone (the update applies only to the record as read).
            if snap.exists and (snap.to_dict() or {}).get("status") == "accepted":
                ref.update(
                    {"status": "unpublished"},
                    option=self.db.write_option(last_update_time=snap.update_time),
                )
        except Exception as exc:
            log.warning("marking turn %s/%s unpublished failed: %s", session_id, turn_id, exc)

    def request_cancel(self, session_id: str, user: User, turn_id: str) -> bool | None:
        """Ask the agent to stop a turn and what it started. None (and nothing written) if there
        is no such turn left to stop; else whether a deployment it started is still running
        (its build must be told, beyond the flag). RateLimited past the per-user cancel limit.
        """
        now = time.time()
        window = CountedWindow(self.db, user.uid, self._windows["cancels"], now)
        turn = turn_ref(self.db, session_id, turn_id)

        @firestore.transactional
        def cancel(txn: firestore.Transaction) -> bool | None:
            window.read(txn)
            snap = turn.get(transaction=txn)
            doc = (snap.to_dict() or {}) if snap.exists else {}
            # A Cloud Run build outlives its turn (PROTOCOL.md): cancelling the turn stops it.
            deploying = bool(doc.get("running_deployments"))
            if not snap.exists or (doc.get("status") in ("done", "abandoned") and not deploying):
                return None
            if doc.get("cancel_requested"):
                return deploying
            window.check(f"{session_id}/{turn_id}")
            # The agent reads the flag in every append, and before it starts the turn.
            txn.set(turn, {"cancel_requested": True}, merge=True)
            window.write(txn, f"{session_id}/{turn_id}")
            return deploying

        outcome: bool | None = cancel(self.db.transaction())
        return outcome

    def list_sessions(self, uid: str, limit: int = 50) -> list[dict[str, Any]]:
        """The user's sessions, newest first (needs the composite index owner_uid, updated_at)."""
        query = (
            self.db.collection(SESSIONS)
            .where(filter=firestore.FieldFilter("owner_uid", "==", uid))
            .order_by("updated_at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        out: list[dict[str, Any]] = []
        for snap in query.stream():
            doc = snap.to_dict() or {}
            out.append(
                {
                    "session_id": snap.id,
                    "title": doc.get("title") if isinstance(doc.get("title"), str) else None,
                    "created_at": _number(doc.get("created_at")),
                    "updated_at": _number(doc.get("updated_at")),
                    "last_seq": int(doc.get("last_seq") or 0),
                }
            )
        return out

    def read_events(
        self, session_id: str, after_seq: int, upto: int, limit: int
    ) -> tuple[list[SessionEvent], int]:
        """The stored events after `after_seq`, up to `upto` (committed: the session said so),
        at most `limit`; and the seq read up to. Read by document id (the zero-padded seq), not
        by a query: the emulator runs a query over its whole database (measured), and a read
        by id costs the same in production. An event missing here has expired (TTL)."""
        last = min(upto, after_seq + limit)
        events = events_ref(self.db, session_id)
        refs = [events.document(event_doc_id(seq)) for seq in range(after_seq + 1, last + 1)]
        found = [to_event(s.id, s.to_dict() or {}) for s in self.db.get_all(refs) if s.exists]
        return sorted(found, key=lambda e: e.seq), last

    def watch(
        self, session_id: str, on_session: Callable[[int, list[SessionEvent]], None]
    ) -> Unsubscribe:
        """Listen to the session document: call back with its `last_seq` and the events of its
        last append (`tail`, agent/event_writes.py), now and on every change.

        A document, not a query on the events: each change costs one read however many events
        it adds, and the emulator matches a document target by name where it re-runs a query
        target over its whole database on every write (measured: tens of ms at 10,000 events).
        Changes close together may come as one, the latest; what its tail lacks, the feed reads
        by seq. All sessions share one Listen stream (listen_mux), in the worker's listener
        process (listen_process).
        """

        def on_document(_doc_id: str, doc: dict[str, Any]) -> None:
            raw_seq = doc.get("last_seq")
            last_seq = raw_seq if isinstance(raw_seq, int) and raw_seq >= 0 else 0
            raw_tail = doc.get("tail")
            tail = raw_tail if isinstance(raw_tail, list) else []
            events = [
                to_event("", item)
                for item in tail
                if isinstance(item, dict) and isinstance(item.get("seq"), int)
            ]
            # Not past last_seq: a tail is only ever that append's own events.
            on_session(last_seq, [e for e in events if 0 < e.seq <= last_seq])

        return self.listener.watch_document(session_ref(self.db, session_id), on_document)

    @property
    def listener(self) -> ListenProcess:
        with self._lock:
            if self._listener is None:
                self._listener = ListenProcess(self._settings)
            return self._listener


def to_event(doc_id: str, doc: dict[str, Any]) -> SessionEvent:
    """Validate a stored event; one that cannot be read still keeps its place in the sequence."""
    try:
        return SESSION_EVENT.validate_python(doc)
    except ValidationError as exc:
        raw_seq = doc.get("seq")
        seq = raw_seq if isinstance(raw_seq, int) and raw_seq > 0 else _seq_from_id(doc_id)
        log.error("stored event %s is invalid: %s", doc_id, exc)
        return ErrorEvent(
            seq=seq,
            turn_id=str(doc.get("turn_id", "")),
            code="internal",
            message="A stored event could not be read.",
        )


def _is_seq_id(doc_id: str) -> bool:
    return len(doc_id) == SEQ_WIDTH and doc_id.isdigit()


def _seq_from_id(doc_id: str) -> int:
    # Event ids are the zero-padded seq (firestore_layout), so the place survives a bad body.
    return int(doc_id) if _is_seq_id(doc_id) else 1


def _title(content: str, limit: int = 80) -> str:
    line = " ".join(content.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _expiry(now: float, ttl_days: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(now + ttl_days * 86400, tz=datetime.UTC)


def new_session_id() -> str:
    """128 random bits, URL-safe, never starting with "-": people paste session ids after
    `--session` on a command line, where a leading "-" reads as an option."""
    while (session_id := secrets.token_urlsafe(16)).startswith("-"):
        pass
    return session_id
