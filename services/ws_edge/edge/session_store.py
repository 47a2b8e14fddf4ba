"""The edge's reads and writes of sessions in Firestore (the agent writes the events)."""

from __future__ import annotations

import datetime
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from google.api_core import exceptions as gexc
from google.cloud import firestore
from pydantic import ValidationError

from deploychat.firestore_layout import SEQ_WIDTH, events_ref, session_ref, turn_ref
from deploychat.protocol import SESSION_EVENT, ErrorEvent, SessionEvent

from .listen_mux import ListenMux
from .settings import EdgeSettings

log = logging.getLogger(__name__)


class Unsubscribe(Protocol):
    def unsubscribe(self) -> None: ...


class SessionStore:
    def __init__(self, settings: EdgeSettings, db: firestore.Client | None = None) -> None:
        self._settings = settings
        self._db = db
        self._mux: ListenMux | None = None
        self._lock = threading.RLock()

    @property
    def db(self) -> firestore.Client:
        with self._lock:
            if self._db is None:
                self._db = firestore.Client(
                    project=self._settings.project_id, database=self._settings.firestore_database
                )
            return self._db

    def open(self, session_id: str | None) -> tuple[str, int, bool]:
        """Find or create a session: (session_id, last_seq, resumed)."""
        if session_id is not None:
            snap = session_ref(self.db, session_id).get()
            if snap.exists:
                return session_id, int((snap.to_dict() or {}).get("last_seq", 0)), True
        else:
            session_id = secrets.token_urlsafe(16)
        now = time.time()
        try:
            session_ref(self.db, session_id).create(
                {
                    "last_seq": 0,
                    "created_at": now,
                    "updated_at": now,
                    "expire_at": _expiry(now, self._settings.session_ttl_days),
                }
            )
        except gexc.AlreadyExists:
            # Two sockets opened the same new session at once; the other one created it.
            return self.open(session_id)
        return session_id, 0, False

    def read_events(self, session_id: str, after_seq: int, limit: int) -> list[SessionEvent]:
        query = (
            events_ref(self.db, session_id)
            .where(filter=firestore.FieldFilter("seq", ">", after_seq))
            .order_by("seq")
            .limit(limit)
        )
        return [to_event(s.id, s.to_dict() or {}) for s in query.stream()]

    def request_cancel(self, session_id: str, turn_id: str) -> None:
        # A merge, so it works before the agent has started the turn; the agent reads the flag
        # in every append. A cancel of an unknown id leaves a flag nothing will ever read.
        turn_ref(self.db, session_id, turn_id).set({"cancel_requested": True}, merge=True)

    def watch(
        self,
        session_id: str,
        window: int,
        on_events: Callable[[list[SessionEvent]], None],
        known: Callable[[int], bool] | None = None,
    ) -> Unsubscribe:
        """Listen to the session's newest `window` events; call back with each one added.

        A bounded query: a listener's whole result set is re-sent on every change (measured
        on the emulator), so a listener on the whole collection would cost O(events) per write.
        Events never change, so those `known(seq)` says are held already are not decoded again.
        All sessions share one Listen stream (listen_mux).
        """
        query = (
            events_ref(self.db, session_id)
            .order_by("seq", direction=firestore.Query.DESCENDING)
            .limit(window)
        )

        def known_id(doc_id: str) -> bool:
            return known is not None and _is_seq_id(doc_id) and known(int(doc_id))

        return self.mux.watch(
            query, lambda doc_id, doc: on_events([to_event(doc_id, doc)]), known_id
        )

    @property
    def mux(self) -> ListenMux:
        with self._lock:
            if self._mux is None:
                self._mux = ListenMux(lambda: self.db)
            return self._mux


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


def _expiry(now: float, ttl_days: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(now + ttl_days * 86400, tz=datetime.UTC)
