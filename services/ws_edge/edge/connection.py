"""One browser's (or program's) WebSocket: frames in, acks and session events out."""

from __future__ import annotations

import hmac
import logging
import threading
import time
from typing import Any

from pydantic import BaseModel
from simple_websocket import ConnectionClosed

from deploychat.errors import ProtocolError, TransientError
from deploychat.protocol import (
    AckFrame,
    CancelFrame,
    ChatFrame,
    ConnectedFrame,
    ErrorCode,
    ErrorFrame,
    InitFrame,
    PingFrame,
    PongFrame,
    dump_frame,
    parse_client_frame,
)
from deploychat.turn_message import TurnRequest

from .publisher import TurnPublisher
from .session_store import SessionStore
from .session_stream import SessionFeed, SessionHub
from .settings import EdgeSettings

log = logging.getLogger(__name__)

CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
CLOSE_RESTART = 1012


class EdgeServices:
    """What every connection of this process shares."""

    def __init__(
        self,
        settings: EdgeSettings,
        store: SessionStore | None = None,
        publisher: TurnPublisher | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or SessionStore(settings)
        self.publisher = publisher or TurnPublisher(settings)
        self.hub = SessionHub(self.store, settings)


class Connection:
    def __init__(self, ws: Any, services: EdgeServices) -> None:
        self._ws = ws
        self._services = services
        self._settings = services.settings
        self._send_lock = threading.Lock()
        self._open = True
        self._session_id: str | None = None
        self._feed: SessionFeed | None = None
        self._pump: threading.Thread | None = None
        self._cursor = 0
        self._chat_times: list[float] = []

    # ---------------------------------------------------------------- lifecycle

    def run(self) -> None:
        hub = self._services.hub
        hub.register(self)
        try:
            while self._open:
                raw = self._ws.receive()
                if raw is not None:
                    self._handle(raw)
        except ConnectionClosed:
            pass
        finally:
            self._open = False
            hub.unregister(self)
            if self._feed is not None:
                self._feed.wake()
                hub.release(self._feed)

    def close(self, code: int, reason: str) -> None:
        self._open = False
        try:
            with self._send_lock:
                self._ws.close(reason=code, message=reason)
        except ConnectionClosed:
            pass
        except OSError as exc:
            log.debug("close failed: %s", exc)

    def _send(self, frame: BaseModel) -> None:
        text = dump_frame(frame)
        try:
            with self._send_lock:
                self._ws.send(text)
        except (ConnectionClosed, OSError):
            self._open = False

    def _error(self, code: ErrorCode, message: str, ref: str | None = None) -> None:
        self._send(ErrorFrame(code=code, message=message, ref=ref))

    # ---------------------------------------------------------------- frames

    def _handle(self, raw: str | bytes) -> None:
        try:
            frame = parse_client_frame(raw)
        except ProtocolError as exc:
            self._error(exc.code, exc.message, exc.ref)
            return
        if isinstance(frame, PingFrame):
            self._send(PongFrame(ts=frame.ts))
        elif isinstance(frame, InitFrame):
            self._init(frame)
        elif self._session_id is None:
            ref = frame.id if isinstance(frame, ChatFrame) else None
            self._error("not_initialized", "send init first", ref)
        elif isinstance(frame, ChatFrame):
            self._chat(frame, self._session_id)
        elif isinstance(frame, CancelFrame):
            self._cancel(frame, self._session_id)

    def _init(self, frame: InitFrame) -> None:
        if self._session_id is not None:
            self._error("invalid_message", "init was already sent on this connection")
            return
        expected = self._settings.auth_token
        if expected is not None and not hmac.compare_digest(
            (frame.token or "").encode(), expected.get_secret_value().encode()
        ):
            self._error("unauthorized", "missing or wrong token")
            self.close(CLOSE_POLICY, "unauthorized")
            return
        try:
            session_id, last_seq, resumed = self._services.store.open(frame.session_id)
        except Exception:
            log.exception("opening session %s failed", frame.session_id)
            self._error("internal", "the session could not be opened; reconnect")
            self.close(CLOSE_INTERNAL, "session store unavailable")
            return
        self._session_id = session_id
        # Without last_seq the client wants what comes next; with it, everything after it.
        self._cursor = last_seq if frame.last_seq is None else frame.last_seq
        self._send(ConnectedFrame(session_id=session_id, last_seq=last_seq, resumed=resumed))
        feed = self._feed = self._services.hub.acquire(session_id)
        feed.note_last_seq(last_seq)
        self._pump = threading.Thread(target=self._pump_events, args=(feed,), daemon=True)
        self._pump.start()

    def _chat(self, frame: ChatFrame, session_id: str) -> None:
        now = time.monotonic()
        self._chat_times = [t for t in self._chat_times if now - t < 60.0]
        if len(self._chat_times) >= self._settings.chat_rate_per_minute:
            self._error("rate_limited", "too many messages; wait a little", frame.id)
            return
        self._chat_times.append(now)
        turn = TurnRequest(
            session_id=session_id, turn_id=frame.id, content=frame.content, accepted_at=time.time()
        )
        try:
            self._services.publisher.publish(turn)
        except TransientError as exc:
            self._error("internal", exc.message, frame.id)
            return
        self._send(AckFrame(id=frame.id))

    def _cancel(self, frame: CancelFrame, session_id: str) -> None:
        try:
            self._services.store.request_cancel(session_id, frame.turn_id)
        except Exception:
            log.exception("cancel of %s/%s failed", session_id, frame.turn_id)
            self._error(
                "internal", "the cancel could not be recorded; send it again", frame.turn_id
            )

    # ---------------------------------------------------------------- events

    def _pump_events(self, feed: SessionFeed) -> None:
        def alive() -> bool:
            return self._open

        try:
            while self._open:
                events, cursor = feed.next_batch(self._cursor, timeout=30.0, alive=alive)
                for event in events:
                    if event.seq <= self._cursor:
                        continue
                    self._send(event)
                    if not self._open:
                        return
                    self._cursor = event.seq
                self._cursor = max(self._cursor, cursor)
        except Exception:
            log.exception("streaming session %s failed", feed.session_id)
            self._error("internal", "the event stream failed; reconnect with last_seq")
            self.close(CLOSE_INTERNAL, "event stream failed")
