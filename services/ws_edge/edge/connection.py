"""One browser's (or program's) WebSocket: frames in, acks and session events out."""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import SpanKind
from pydantic import BaseModel

from deploychat.errors import ProtocolError, TransientError
from deploychat.protocol import (
    AckFrame,
    CancelFrame,
    ChatFrame,
    ClientFrame,
    ConnectedFrame,
    ErrorCode,
    ErrorFrame,
    InitFrame,
    PingFrame,
    PongFrame,
    dump_frame,
    parse_client_frame,
)
from deploychat.tracing import tracer
from deploychat.turn_message import TurnRequest

from .publisher import TurnPublisher
from .session_store import SessionStore
from .session_stream import SessionFeed, SessionHub
from .settings import EdgeSettings
from .websocket import ConnectionClosed, WebSocket

try:
    from gevent import monkey as _monkey
    from gevent import spawn as _gevent_spawn
except ImportError:  # pragma: no cover - the edge always runs under gevent
    _gevent_spawn = None

log = logging.getLogger(__name__)
_tracer = tracer(__name__)

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
    def __init__(self, ws: WebSocket, services: EdgeServices) -> None:
        self._ws = ws
        self._services = services
        self._settings = services.settings
        self._open = True
        self._session_id: str | None = None
        self._feed: SessionFeed | None = None
        self._cursor = 0
        # Guards the two greenlets that come and go: delivery and frame handling.
        self._lock = threading.Lock()
        self._delivering = False
        self._handling = False
        self._inbox: list[ClientFrame | ProtocolError] = []
        self._chat_times: list[float] = []

    # ---------------------------------------------------------------- lifecycle

    def run(self) -> None:
        """Read and handle frames until the socket closes: the socket's own greenlet."""
        hub = self._services.hub
        hub.register(self)
        try:
            self._ws.serve(self._receive)
        finally:
            self._open = False
            hub.unregister(self)
            # A session being opened right now is released by _init, which sees _open False.
            if self._feed is not None:
                self._feed.unsubscribe(self)
                hub.release(self._feed)

    def _receive(self, raw: str | bytes) -> None:
        """One frame from the client; frames are handled in the order they came.

        A ping with nothing queued before it is answered here, at once. Anything else goes to a
        greenlet that handles the queue in order and ends with it: init, chat and cancel call
        Firestore and Pub/Sub, whose deep stacks would otherwise stay in this greenlet's memory
        for the socket's whole life (a greenlet keeps every page of stack it has touched).
        """
        try:
            frame: ClientFrame | ProtocolError = parse_client_frame(raw)
        except ProtocolError as exc:
            frame = exc
        if isinstance(frame, PingFrame) and not self._inbox and not self._handling:
            if self._open:
                self._send(PongFrame(ts=frame.ts))
            return
        self._inbox.append(frame)
        with self._lock:
            if self._handling:
                return
            self._handling = True
        spawn(self._handle_inbox)

    def _handle_inbox(self) -> None:
        while True:
            with self._lock:
                if not self._inbox:
                    self._handling = False
                    return
                frame = self._inbox.pop(0)
            try:
                self._handle(frame)
            except Exception:
                log.exception("handling a frame failed")
                self._error("internal", "the frame could not be handled")

    def close(self, code: int, reason: str) -> None:
        self._open = False
        self._ws.close(code, reason)

    def _send(self, frame: BaseModel) -> None:
        try:
            self._ws.send(dump_frame(frame))
        except (ConnectionClosed, OSError):
            self._open = False

    def _error(self, code: ErrorCode, message: str, ref: str | None = None) -> None:
        self._send(ErrorFrame(code=code, message=message, ref=ref))

    # ---------------------------------------------------------------- frames

    def _handle(self, frame: ClientFrame | ProtocolError) -> None:
        if not self._open:
            return
        if isinstance(frame, ProtocolError):
            self._error(frame.code, frame.message, frame.ref)
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
        feed = self._services.hub.acquire(session_id)
        feed.note_last_seq(last_seq)
        if not self._open:
            # The socket closed while the session was opened: run() has cleaned up already.
            self._services.hub.release(feed)
            return
        self._feed = feed
        feed.subscribe(self)

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
        with _tracer.start_as_current_span(
            "chat.accept",
            kind=SpanKind.PRODUCER,
            attributes={"deploychat.session_id": session_id, "deploychat.turn_id": frame.id},
        ):
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

    def kick(self) -> None:
        """The feed knows of events past our cursor: start delivering, unless already on it.

        Delivery runs in a greenlet of its own only while there is something to send, so an
        idle socket costs no greenlet besides its reader's.
        """
        feed = self._feed
        with self._lock:
            if self._delivering or not self._open or feed is None or self._cursor >= feed.high:
                return
            self._delivering = True
        spawn(self._deliver, feed)

    def _deliver(self, feed: SessionFeed) -> None:
        try:
            while True:
                events, cursor = feed.take(self._cursor)
                for event in events:
                    if event.seq <= self._cursor:
                        continue
                    self._send(event)
                    if not self._open:
                        return
                    self._cursor = event.seq
                self._cursor = max(self._cursor, cursor)
                with self._lock:
                    # Checked under the lock kick() takes, so no kick falls between the two.
                    if not self._open or self._cursor >= feed.high:
                        self._delivering = False
                        return
        except Exception:
            log.exception("streaming session %s failed", feed.session_id)
            self._error("internal", "the event stream failed; reconnect with last_seq")
            self.close(CLOSE_INTERNAL, "event stream failed")
        finally:
            with self._lock:
                self._delivering = False


def spawn(target: Callable[..., None], *args: Any) -> None:
    """Run `target` concurrently: a bare greenlet under the gevent worker, else a thread.

    gevent's patched `threading.Thread` would do too, but it adds a Thread object, an Event and
    locks to every greenlet, and its start() waits for the greenlet to run.
    """
    if _gevent_spawn is not None and _monkey.is_module_patched("threading"):
        _gevent_spawn(target, *args)
    else:
        threading.Thread(target=target, args=args, daemon=True).start()
