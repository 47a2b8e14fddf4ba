"""One browser's (or program's) WebSocket: frames in, acks and session events out.

The socket's own greenlet (flask-sock's handler) reads frames and keeps the protocol's clocks:
`init` within `init_timeout_s` (else 1008), some frame every `idle_timeout_s` (else 1001), and
the socket's maximum age (1012, so the platform's request timeout never cuts it). Frames are
handled in the order they came, by short-lived greenlets: init, chat and cancel call Firestore
and Pub/Sub, whose deep stacks would otherwise stay in the socket greenlet's memory for its
whole life. A ping with nothing queued before it is answered at once. At most `inbox_frames`
frames wait to be handled: past that the socket is not read until they are, so a client that
floods frames and never reads the answers is held back by TCP, and dropped at the write limit.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
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
from deploychat.turn_message import CancelRequest, TurnRequest

from .identity import Unauthorized, User
from .limits import RateLimited
from .services import EdgeServices
from .session_store import SessionNotYours
from .session_stream import SessionFeed
from .transport import ChatSocket

try:
    from gevent import monkey as _monkey
    from gevent import spawn as _gevent_spawn
except ImportError:  # pragma: no cover - the edge always runs under gevent
    _gevent_spawn = None

log = logging.getLogger(__name__)
_tracer = tracer(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
CLOSE_RESTART = 1012


class Connection:
    def __init__(self, ws: ChatSocket, services: EdgeServices) -> None:
        self._ws = ws
        self._services = services
        self._settings = services.settings
        self._open = True
        self._id = uuid.uuid4().hex
        self._user: User | None = None
        self._socket_recorded = False
        self._session_id: str | None = None
        self._feed: SessionFeed | None = None
        self._cursor = 0
        # Guards the two greenlets that come and go: delivery and frame handling.
        self._lock = threading.Lock()
        self._delivering = False
        self._handling = False
        self._init_received = False
        self._inbox: list[ClientFrame | ProtocolError] = []
        self.opened_at = time.monotonic()
        age = self._settings.socket_age_limit_s
        self._max_age_s = age * (1 - random.random() * self._settings.socket_age_jitter)

    # ---------------------------------------------------------------- lifecycle

    def run(self) -> None:
        """Read and handle frames until the socket closes: the socket's own greenlet."""
        hub = self._services.hub
        hub.register(self)
        try:
            self._read_loop()
        except ConnectionClosed:
            pass
        finally:
            self._open = False
            hub.unregister(self)
            # A session being opened right now is released by _init, which sees _open False.
            if self._feed is not None:
                self._feed.unsubscribe(self)
                hub.release(self._feed)
            if self._socket_recorded and self._user is not None:
                spawn(self._forget_socket, self._user.uid)
            self._ws.wait_closed()

    def _read_loop(self) -> None:
        settings = self._settings
        last_frame = time.monotonic()
        while self._open and self._ws.connected:
            # Every turn, not only when no frame came: a client that keeps sending must still
            # meet the init and age limits.
            now = time.monotonic()
            if not self._init_received and now >= self.opened_at + settings.init_timeout_s:
                self._error("not_initialized", "no init in time")
                self.close(CLOSE_POLICY, "no init in time")
                return
            if now >= last_frame + settings.idle_timeout_s:
                self.close(CLOSE_GOING_AWAY, "idle")
                return
            if now >= self.opened_at + self._max_age_s:
                # Before the platform's request timeout cuts it: the client reconnects at once.
                self.close(CLOSE_RESTART, "connection age limit: reconnect")
                return
            deadlines = [last_frame + settings.idle_timeout_s, self.opened_at + self._max_age_s]
            if not self._init_received:
                deadlines.append(self.opened_at + settings.init_timeout_s)
            message = self._ws.receive(timeout=max(0.0, min(deadlines) - now))
            if message is not None:
                last_frame = time.monotonic()
                self._receive(message)
                # One frame, then every other socket's turn: one read brings a dozen small
                # frames, and a flooding client would otherwise have them all handled before
                # anyone else's ping (under gevent, time.sleep(0) yields to the loop). With
                # none waiting, the next receive() yields anyway: a switch saved per frame.
                if self._ws.has_waiting():
                    time.sleep(0)

    def _receive(self, raw: str | bytes) -> None:
        """One frame from the client; frames are handled in the order they came."""
        try:
            frame: ClientFrame | ProtocolError = parse_client_frame(raw)
        except ProtocolError as exc:
            frame = exc
        except Exception:  # a frame must never end the socket without a close frame
            log.exception("parsing a frame failed")
            frame = ProtocolError("invalid_message", "the frame could not be read")
        if isinstance(frame, InitFrame):
            self._init_received = True
        if isinstance(frame, PingFrame) and not self._inbox and not self._handling:
            if self._open:
                self._send(PongFrame(ts=frame.ts))
            return
        with self._lock:
            self._inbox.append(frame)
            if len(self._inbox) >= self._settings.inbox_frames:
                self._ws.pause_reading()
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
                if len(self._inbox) == self._settings.inbox_frames - 1:
                    self._ws.resume_reading()
            try:
                self._handle(frame)
            except Exception:
                log.exception("handling a frame failed")
                self._error("internal", "the frame could not be handled")
            if self._inbox:
                time.sleep(0)  # as in the read loop: one frame, then the others' turn

    def close(self, code: int, reason: str) -> None:
        self._open = False
        self._ws.close(code, reason)

    def drain(self, code: int, reason: str, write_timeout_s: float) -> None:
        """Close with `code`; a close frame that cannot be written within `write_timeout_s` of
        trying drops the connection instead."""
        self._ws.hurry(write_timeout_s)
        self.close(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection at once (a drain whose close frame could not go out)."""
        self._open = False
        self._ws.abort()

    def _send(self, frame: BaseModel) -> None:
        try:
            self._ws.send(dump_frame(frame))
        except (ConnectionClosed, OSError):
            self._open = False

    def _error(
        self,
        code: ErrorCode,
        message: str,
        ref: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self._send(ErrorFrame(code=code, message=message, ref=ref, retry_after_s=retry_after_s))

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
        elif self._session_id is None or self._user is None:
            ref = frame.id if isinstance(frame, ChatFrame) else None
            self._error("not_initialized", "send init first", ref)
        elif isinstance(frame, ChatFrame):
            self._chat(frame, self._session_id, self._user)
        elif isinstance(frame, CancelFrame):
            self._cancel(frame, self._session_id, self._user)

    def _init(self, frame: InitFrame) -> None:
        if self._user is not None or self._session_id is not None:
            self._error("invalid_message", "init was already sent on this connection")
            return
        services = self._services
        try:
            user = services.verifier.verify(frame.token)
            if self._settings.auth_mode != "none":
                services.sockets.open(user.uid, self._id)
                self._socket_recorded = True
            self._user = user
            session_id, last_seq, resumed = services.store.open(frame.session_id, user)
        except Unauthorized as exc:
            self._refuse("unauthorized", str(exc))
            return
        except SessionNotYours:
            self._refuse("unauthorized", "no such session for this user")
            return
        except RateLimited as exc:
            self._error("rate_limited", f"{exc.what}; wait a little", None, exc.retry_s)
            self.close(CLOSE_POLICY, exc.what)
            return
        except Exception:
            log.exception("opening session %s failed", frame.session_id)
            self._error("internal", "the session could not be opened; reconnect")
            self.close(CLOSE_INTERNAL, "session store unavailable")
            return
        self._session_id = session_id
        # Without last_seq the client wants what comes next; with it, everything after it.
        self._cursor = last_seq if frame.last_seq is None else frame.last_seq
        self._send(ConnectedFrame(session_id=session_id, last_seq=last_seq, resumed=resumed))
        feed = services.hub.acquire(session_id)
        feed.note_last_seq(last_seq)
        if not self._open:
            # The socket closed while the session was opened: run() has cleaned up already.
            services.hub.release(feed)
            return
        self._feed = feed
        feed.subscribe(self)

    def _refuse(self, code: ErrorCode, message: str) -> None:
        self._error(code, message)
        self.close(CLOSE_POLICY, "unauthorized")

    def _chat(self, frame: ChatFrame, session_id: str, user: User) -> None:
        try:
            self._services.store.accept_turn(session_id, user, frame.id, frame.content)
        except RateLimited as exc:
            self._error("rate_limited", "too many messages; wait a little", frame.id, exc.retry_s)
            return
        except Exception:
            log.exception("recording turn %s/%s failed", session_id, frame.id)
            self._error("internal", "the message could not be accepted; send it again", frame.id)
            return
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
                self._services.store.mark_unpublished(session_id, frame.id)
                self._error("internal", exc.message, frame.id)
                return
            self._send(AckFrame(id=frame.id))

    def _cancel(self, frame: CancelFrame, session_id: str, user: User) -> None:
        try:
            deploying = self._services.store.request_cancel(session_id, user, frame.turn_id)
            if deploying:
                # The build runs on with no turn to read the flag: tell the agent at once.
                self._services.publisher.publish_cancel(
                    CancelRequest(session_id=session_id, turn_id=frame.turn_id)
                )
        except RateLimited as exc:
            self._error(
                "rate_limited", "too many cancels; wait a little", frame.turn_id, exc.retry_s
            )
        except Exception:
            log.exception("cancel of %s/%s failed", session_id, frame.turn_id)
            self._error(
                "internal", "the cancel could not be recorded; send it again", frame.turn_id
            )

    def _forget_socket(self, uid: str) -> None:
        try:
            self._services.sockets.close(uid, self._id)
        except Exception:
            log.warning("removing socket record of %s failed", uid, exc_info=True)

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


def spawn(target: Callable[..., Any], *args: Any) -> None:
    """Run `target` concurrently: a bare greenlet under the gevent worker, else a thread.

    gevent's patched `threading.Thread` would do too, but it adds a Thread object, an Event and
    locks to every greenlet, and its start() waits for the greenlet to run.
    """
    if _gevent_spawn is not None and _monkey.is_module_patched("threading"):
        _gevent_spawn(target, *args)
    else:
        threading.Thread(target=target, args=args, daemon=True).start()
