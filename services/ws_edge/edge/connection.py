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
from deploychat.tracing import tracer
from deploychat.turn_message import TurnRequest

from .publisher import TurnPublisher
from .session_store import SessionStore
from .session_stream import SessionFeed, SessionHub
from .settings import EdgeSettings

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
    def __init__(self, ws: Any, services: EdgeServices) -> None:
        self._ws = ws
        self._services = services
        self._settings = services.settings
        self._send_lock = threading.Lock()
        self._open = True
        self._session_id: str | None = None
        self._feed: SessionFeed | None = None
        self._cursor = 0
        self._deliver_lock = threading.Lock()
        self._delivering = False
        self._chat_times: list[float] = []

    # ---------------------------------------------------------------- lifecycle

    def run(self) -> None:
        """Read and handle frames until the socket closes (see InlineReader)."""
        hub = self._services.hub
        hub.register(self)
        self._ws.event.callback = self._drain_input
        try:
            self._ws.thread.run()
        finally:
            self._open = False
            hub.unregister(self)
            if self._feed is not None:
                self._feed.unsubscribe(self)
                hub.release(self._feed)

    def _drain_input(self) -> None:
        while self._ws.input_buffer:
            raw = self._ws.input_buffer.pop(0)
            try:
                self._handle(raw)
            except Exception:
                log.exception("handling a frame failed")
                self._error("internal", "the frame could not be handled")

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
        if not self._open:
            return
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
        idle socket costs no greenlet besides its request's.
        """
        feed = self._feed
        with self._deliver_lock:
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
                with self._deliver_lock:
                    # Checked under the lock kick() takes, so no kick falls between the two.
                    if not self._open or self._cursor >= feed.high:
                        self._delivering = False
                        return
        except Exception:
            log.exception("streaming session %s failed", feed.session_id)
            self._error("internal", "the event stream failed; reconnect with last_seq")
            self.close(CLOSE_INTERNAL, "event stream failed")
        finally:
            with self._deliver_lock:
                self._delivering = False


class InlineReader:
    """simple-websocket's `thread_class`: its read loop runs in the request's own greenlet.

    simple-websocket would start a reader thread per socket while the request waits on an
    event; with gevent that is two greenlets (and their stacks) per socket. `Connection.run`
    runs the loop itself, and frames are handled as they arrive (FrameSignal).
    """

    def __init__(self, target: Callable[[], None]) -> None:
        self._target = target
        self.name = "inline-reader"

    def start(self) -> None:
        pass

    def run(self) -> None:
        self._target()


class FrameSignal:
    """simple-websocket's `event_class`: set when a frame (or the close) has arrived."""

    def __init__(self) -> None:
        self.callback: Callable[[], None] | None = None

    def set(self) -> None:
        if self.callback is not None:
            self.callback()

    def clear(self) -> None:
        pass

    def wait(self, timeout: float | None = None) -> bool:
        return True


def spawn(target: Callable[..., None], *args: Any) -> None:
    # Under the gevent worker threading is patched, so this is a greenlet.
    threading.Thread(target=target, args=args, daemon=True).start()
