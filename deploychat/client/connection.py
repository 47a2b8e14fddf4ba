"""ChatClient: the connection engine's I/O on the `websockets` asyncio API.

One task owns the socket: it connects, sends `init`, resumes from the last applied seq, flushes
the outbox, answers the heartbeat and hands each stored event to the caller once, in order.
Every decision (how long to wait, when the link is dead, what to resend, what to drop) is
asked of the pure engine in engine.py. Opening a connection (the handshake, `init` and the
server's answer) is handshake.py's; what each frame from the server does is inbound.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from deploychat.protocol import (
    AnalysisEvent,
    CancelFrame,
    ChatEvent,
    ChatFrame,
    ConnectedFrame,
    DeploymentCompleteEvent,
    DeploymentUpdateEvent,
    ErrorEvent,
    InitFrame,
    PingFrame,
    SessionEvent,
    TypingEvent,
    dump_frame,
)

from . import state_file
from .config import ClientConfig, ConnectionState
from .engine import (
    Backoff,
    Beat,
    Heartbeat,
    LostReason,
    Outbox,
    OutgoingMessage,
    Random,
    Reconnector,
    SeqTracker,
)
from .handshake import Dialer, closed_reason
from .inbound import Inbound
from .updates import (
    HistoryLost,
    MessageDropped,
    SessionLost,
    StateChanged,
    Update,
)

log = logging.getLogger(__name__)

STORED_EVENTS = (
    ChatEvent,
    TypingEvent,
    AnalysisEvent,
    DeploymentUpdateEvent,
    DeploymentCompleteEvent,
    ErrorEvent,
)

_END = object()


class MessageTooLarge(ValueError):
    """The message would not fit in one frame; the server would close the socket for it."""


def new_message_id() -> str:
    return uuid.uuid4().hex


class ChatClient:
    """A chat session over a WebSocket that survives drops without losing or repeating anything.

    >>> async with ChatClient(ClientConfig(url=...)) as client:
    ...     turn = await client.send("deploy github.com/me/app")
    ...     async for event in client.events():
    ...         ...
    """

    def __init__(self, config: ClientConfig | None = None, *, rand: Random = random.random) -> None:
        self.config = cfg = config or ClientConfig()
        saved = state_file.load(cfg.state_file) if cfg.state_file else state_file.SavedState()
        session_id = cfg.session_id or saved.session_id
        last_seq: int | None
        if cfg.last_seq is not None:
            last_seq = cfg.last_seq
        elif session_id is None:
            last_seq = 0  # a new session has nothing earlier to miss
        elif session_id == saved.session_id:
            last_seq = saved.last_seq
        else:
            last_seq = None
        # Fail here, not on every reconnect, if the id is not one the server would take.
        InitFrame(type="init", session_id=session_id, last_seq=last_seq, token=cfg.token)
        self._session_id = session_id
        self._seq = SeqTracker(last_seq)
        self._outbox = Outbox(cfg.outbox_limit, saved.outbox)
        self._reconnector = Reconnector(Backoff.from_config(cfg), cfg.max_attempts, rand)
        self._heartbeat = Heartbeat(cfg.ping_interval_s, cfg.pong_timeout_s)
        self._state = ConnectionState.IDLE
        self._updates: asyncio.Queue[Any] = asyncio.Queue()
        self._watchers: list[tuple[frozenset[ConnectionState], asyncio.Future[None]]] = []
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._cancels: list[str] = []
        self._dialer = Dialer(cfg, self._emit)

    # ---------------------------------------------------------------- public API

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def session_id(self) -> str | None:
        return self._session_id

    @property
    def last_seq(self) -> int | None:
        """The highest seq handed to the caller (None until the server said where it stands)."""
        return self._seq.last

    @property
    def pending(self) -> list[OutgoingMessage]:
        """Messages not yet acknowledged by the server, oldest first."""
        return self._outbox.pending()

    @property
    def attempts(self) -> int:
        return self._reconnector.attempts

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="chat-client")

    async def close(self) -> None:
        """Close the socket and stop; queued messages stay in the state file, if any."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._save()
        self._set_state(ConnectionState.DISCONNECTED)
        self._updates.put_nowait(_END)

    async def __aenter__(self) -> ChatClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def send(self, content: str, message_id: str | None = None) -> str:
        """Queue a chat message and send it as soon as connected; returns its id (= turn id).

        It stays queued until the server acknowledges it, across reconnects and, with a state
        file, across runs.
        """
        message_id = message_id or new_message_id()
        frame = ChatFrame(type="chat", id=message_id, content=content)
        if len(dump_frame(frame).encode()) > self.config.max_frame_bytes:
            raise MessageTooLarge(f"the message is over {self.config.max_frame_bytes} bytes")
        for dropped in self._outbox.add(OutgoingMessage(message_id, content)):
            self._emit(MessageDropped(dropped.id, dropped.content, "the outbox was full"))
        self._save()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await self._flush(ws)
        return message_id

    async def cancel(self, turn_id: str) -> None:
        """Stop the agent's work on a turn (now, or as soon as connected)."""
        CancelFrame(type="cancel", turn_id=turn_id)  # validates the id
        self._cancels.append(turn_id)
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await self._flush(ws)

    def reconnect(self) -> None:
        """Try again now: after giving up, or instead of waiting out a backoff delay."""
        self._wake.set()

    async def updates(self) -> AsyncIterator[Update]:
        """Everything, in order: stored events (each once) and connection news. Ends on close."""
        while True:
            item = await self._updates.get()
            if item is _END:
                return
            yield item

    async def events(self) -> AsyncIterator[SessionEvent]:
        """The session's stored events only: every one exactly once, in seq order."""
        async for update in self.updates():
            if isinstance(update, STORED_EVENTS):
                yield update

    async def wait_for(self, *states: ConnectionState, timeout: float | None = None) -> None:
        if self._state in states:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (frozenset(states), future)
        self._watchers.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            if entry in self._watchers:
                self._watchers.remove(entry)

    # ---------------------------------------------------------------- the loop

    async def _run(self) -> None:
        try:
            await self._connect_forever()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave the caller waiting forever
            log.exception("the chat client stopped")
            self._set_state(ConnectionState.ERROR, reason=f"internal error: {exc}")

    async def _connect_forever(self) -> None:
        self._set_state(ConnectionState.CONNECTING)
        while True:
            reason = await self._session()
            delay = self._reconnector.next_delay(reason)
            if delay is not None and self._dialer.wait_at_least_s:
                delay = max(delay, self._dialer.wait_at_least_s)
                self._dialer.wait_at_least_s = 0.0
            if delay is None:
                self._set_state(ConnectionState.ERROR, reason=self._give_up_reason(reason))
                self._wake.clear()
                await self._wake.wait()
                self._reconnector.reset()
                self._set_state(ConnectionState.CONNECTING)
                continue
            self._set_state(
                ConnectionState.RECONNECTING,
                attempt=self._reconnector.attempts,
                delay_s=delay,
                reason=reason.value,
            )
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)

    def _give_up_reason(self, reason: LostReason) -> str:
        if reason is LostReason.REFUSED:
            return self._dialer.refusal or "the server refused this client"
        n = self._reconnector.attempts
        return f"could not connect to {self.config.url} after {n} attempt{'s' * (n != 1)}"

    async def _session(self) -> LostReason:
        """One connection, from opening to losing it."""
        opened = await self._dialer.open(self._session_id, self._seq.last)
        if isinstance(opened, LostReason):
            return opened
        ws, connected = opened
        reason = LostReason.CLOSED
        try:
            reason = await self._connected(ws, connected)
            return reason
        except ConnectionClosed as exc:
            reason = closed_reason(exc)
            return reason
        except OSError:
            return reason
        finally:
            self._ws = None
            if reason in (LostReason.DEAD, LostReason.GAP):
                # No close handshake over a link that swallows bytes (or that we distrust).
                ws.transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await ws.close()

    async def _connected(self, ws: ClientConnection, connected: ConnectedFrame) -> LostReason:
        if self._dialer.fresh_session:
            # Said out loud: the history the person expected is not coming.
            lost = self._session_id
            self._dialer.fresh_session = False
            self._seq = SeqTracker(0)
            self._cancels.clear()
            if lost is not None:
                self._emit(SessionLost(lost, connected.session_id))
        self._session_id = connected.session_id
        if self._seq.connected(connected.last_seq):
            self._save()
            self._emit(HistoryLost(connected.session_id, connected.last_seq))
            return LostReason.GAP
        self._reconnector.connected()
        self._heartbeat.start(time.monotonic())
        self._outbox.new_connection()
        self._save()
        self._ws = ws
        self._set_state(ConnectionState.CONNECTED)
        await self._flush(ws)
        return await self._pump(ws)

    async def _pump(self, ws: ClientConnection) -> LostReason:
        inbound = Inbound(
            self._seq,
            self._outbox,
            self._heartbeat,
            self.config.resend_after_s,
            self._save,
            self._emit,
        )
        while True:
            now = time.monotonic()
            beat = self._heartbeat.poll(now)
            if beat is Beat.DEAD:
                log.info("no pong in %.1f s: the connection is dead", self.config.pong_timeout_s)
                return LostReason.DEAD
            if beat is Beat.PING:
                await self._write(ws, PingFrame(type="ping", ts=time.time()))
            resend_at = self._outbox.next_resend()
            if resend_at is not None and resend_at <= now:
                await self._flush(ws)
                resend_at = self._outbox.next_resend()
            wake = min(self._heartbeat.next_wakeup(), resend_at or float("inf"))
            try:
                # Cancelling recv() loses nothing: the frame is returned by the next call.
                raw = await asyncio.wait_for(ws.recv(), max(0.001, wake - time.monotonic()))
            except TimeoutError:
                continue
            lost = inbound.handle(raw)
            if lost is not None:
                return lost

    async def _flush(self, ws: ClientConnection) -> None:
        # One writer at a time, so queued messages reach the server in the order written.
        async with self._send_lock:
            for message in self._outbox.to_send(time.monotonic()):
                await ws.send(
                    dump_frame(ChatFrame(type="chat", id=message.id, content=message.content))
                )
            while self._cancels:
                await ws.send(dump_frame(CancelFrame(type="cancel", turn_id=self._cancels[0])))
                self._cancels.pop(0)

    async def _write(self, ws: ClientConnection, frame: BaseModel) -> None:
        async with self._send_lock:
            await ws.send(dump_frame(frame))

    # ---------------------------------------------------------------- bookkeeping

    def _set_state(
        self, state: ConnectionState, *, attempt: int = 0, delay_s: float = 0.0, reason: str = ""
    ) -> None:
        if state is self._state and state is not ConnectionState.RECONNECTING:
            return
        self._state = state
        self._emit(StateChanged(state, attempt=attempt, delay_s=delay_s, reason=reason))
        for states, future in list(self._watchers):
            if state in states and not future.done():
                future.set_result(None)

    def _emit(self, update: Update) -> None:
        self._updates.put_nowait(update)

    def _save(self) -> None:
        path = self.config.state_file
        if path is None:
            return
        try:
            state_file.save(
                path,
                state_file.SavedState(self._session_id, self._seq.last, self._outbox.pending()),
            )
        except OSError as exc:
            log.warning("could not save the client state to %s: %s", path, exc)
