"""A chat client written from PROTOCOL.md alone, that misbehaves on purpose.

One `SessionClient` drives one session: it signs in (a guest ID token), opens the session with
`init` without an id, then sends its turns, keeping the protocol's client rules (an outbox:
a chat leaves it only when acked, and is sent again, same id, after a reconnect; `last_seq` on
every reconnect; reconnect with backoff, at once after 1012; ping when the line is quiet). The
faults it makes itself, at random from its seed: it drops the connection mid-stream, sends an
acked chat again, cancels a turn once its answer starts, and reconnects to any edge.

It records what it saw live: each stored event applied in `seq` order, and every frame that
broke the rules (a gap, a repeat). The checker compares that with a replay from 0.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

Frame = dict[str, Any]


@dataclass
class Behaviour:
    """The client's own faults, as probabilities (per connection, per turn)."""

    drop: float = 0.15  # a connection is dropped after a few stored events
    resend: float = 0.05  # an acked turn is sent again with its id
    cancel: float = 0.03  # a turn is cancelled once its answer starts
    window: int = 2  # turns in flight at once (sent and not answered)
    think_s: tuple[float, float] = (0.0, 0.5)  # pause before each new turn


@dataclass
class TurnState:
    id: str
    content: str
    sent: bool = False
    acked: bool = False
    ended: bool = False
    cancelled: bool = False


@dataclass
class SessionLog:
    """What one client did and saw."""

    index: int
    session_id: str | None = None
    turns: list[TurnState] = field(default_factory=list)
    acks: list[str] = field(default_factory=list)  # first ack of each turn, in order
    live: dict[int, Frame] = field(default_factory=dict)
    last_seq: int = 0
    gaps: int = 0
    repeats: int = 0
    connects: int = 0
    drops: int = 0
    resends: int = 0
    cancels: int = 0
    restarts_seen: int = 0  # closes with 1012
    refused: dict[str, int] = field(default_factory=dict)  # error frames by code
    failure: str | None = None


class Reconnect(Exception):
    """Leave this connection and open another (a fault of ours, or a dead line)."""


class Refused(Exception):
    """The edge refused `init` (busy, limits): try again after the backoff."""


class SessionClient:
    def __init__(
        self,
        log: SessionLog,
        urls: list[str],
        token: str,
        rng: random.Random,
        behaviour: Behaviour,
        on_ack: Any = None,
    ) -> None:
        self.log = log
        self._urls = urls
        self._token = token
        self._rng = rng
        self._b = behaviour
        self._on_ack = on_ack or (lambda log, turn_id: None)
        self._backoff = 1.0
        self._next_at = 0.0

    # ---------------------------------------------------------------- the session

    def done(self) -> bool:
        return all(t.acked and t.ended for t in self.log.turns)

    async def run(self, deadline: float) -> None:
        while not self.done() and time.monotonic() < deadline:
            url = self._rng.choice(self._urls)
            try:
                async with connect(
                    url, open_timeout=10, close_timeout=5, max_size=None, ping_interval=None
                ) as ws:
                    self.log.connects += 1
                    await self._connection(ws, deadline)
                    self._backoff = 1.0
            except Reconnect:
                continue  # at once, to any edge
            except Refused:
                await self._wait_backoff()
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else None
                if code == 1012:
                    self.log.restarts_seen += 1
                    continue  # the instance drains: reconnect at once, no backoff
                await self._wait_backoff()
            except (OSError, TimeoutError, InvalidHandshake, InvalidStatus):
                await self._wait_backoff()

    async def _wait_backoff(self) -> None:
        # PROTOCOL.md: 1 s, x1.5 each attempt, capped (here 10 s: a run is bounded), jitter.
        delay = self._backoff * self._rng.uniform(0.5, 1.0)
        self._backoff = min(self._backoff * 1.5, 10.0)
        await asyncio.sleep(delay)

    async def _connection(self, ws: ClientConnection, deadline: float) -> None:
        init: Frame = {"type": "init", "token": self._token}
        if self.log.session_id is not None:
            init.update(session_id=self.log.session_id, last_seq=self.log.last_seq)
        await ws.send(json.dumps(init))
        connected = await self._recv(ws, 20)
        if connected.get("type") != "connected":
            code = str(connected.get("code"))
            self.log.refused[f"init {code}"] = self.log.refused.get(f"init {code}", 0) + 1
            raise Refused
        self.log.session_id = connected["session_id"]
        # This connection drops after a few stored events, if the dice say so.
        drop_after = self._rng.randint(1, 12) if self._rng.random() < self._b.drop else None
        seen_here = 0
        # The outbox: what was sent and never acked goes again, in order, same ids.
        for turn in self.log.turns:
            if turn.sent and not turn.acked:
                await self._send_chat(ws, turn)
        quiet_since = time.monotonic()
        pinged = False
        while not self.done():
            if time.monotonic() > deadline:
                return
            await self._send_more(ws)
            try:
                frame = await self._recv(ws, 5.0)
            except TimeoutError:
                # Heartbeat: a quiet line gets a ping; no answer to it, and the line is dead.
                if pinged:
                    raise Reconnect from None
                if time.monotonic() - quiet_since > 10:
                    await ws.send(json.dumps({"type": "ping", "ts": time.time()}))
                    pinged = True
                continue
            quiet_since, pinged = time.monotonic(), False
            if "seq" in frame:
                self._apply(frame)
                seen_here += 1
                await self._maybe_cancel(ws, frame)
                if drop_after is not None and seen_here >= drop_after:
                    self.log.drops += 1
                    ws.transport.abort()  # no close frame: as a network cut
                    raise Reconnect
            elif frame["type"] == "ack":
                self._ack(frame["id"])
            elif frame["type"] == "error":
                await self._refused(ws, frame)
        await ws.close()

    async def _recv(self, ws: ClientConnection, timeout: float) -> Frame:
        raw = await asyncio.wait_for(ws.recv(), timeout)
        frame: Frame = json.loads(raw)
        return frame

    # ---------------------------------------------------------------- sending

    async def _send_more(self, ws: ClientConnection) -> None:
        in_flight = [t for t in self.log.turns if t.sent and not t.ended]
        if len(in_flight) >= self._b.window or time.monotonic() < self._next_at:
            return
        fresh = next((t for t in self.log.turns if not t.sent), None)
        if fresh is not None:
            await self._send_chat(ws, fresh)
            self._next_at = time.monotonic() + self._rng.uniform(*self._b.think_s)
        acked = [t for t in self.log.turns if t.acked]
        if acked and self._rng.random() < self._b.resend:
            # The same id again (as a client unsure of its ack): one more ack, no second answer.
            self.log.resends += 1
            await self._send_chat(ws, self._rng.choice(acked))

    async def _send_chat(self, ws: ClientConnection, turn: TurnState) -> None:
        turn.sent = True
        await ws.send(json.dumps({"type": "chat", "id": turn.id, "content": turn.content}))

    async def _maybe_cancel(self, ws: ClientConnection, frame: Frame) -> None:
        if frame["type"] != "chat" or frame.get("role") != "assistant" or frame.get("final"):
            return
        turn = next((t for t in self.log.turns if t.id == frame.get("turn_id")), None)
        if turn is None or turn.cancelled or self._rng.random() >= self._b.cancel:
            return
        turn.cancelled = True
        self.log.cancels += 1
        await ws.send(json.dumps({"type": "cancel", "turn_id": turn.id}))

    async def _refused(self, ws: ClientConnection, frame: Frame) -> None:
        code = str(frame.get("code"))
        self.log.refused[code] = self.log.refused.get(code, 0) + 1
        ref = frame.get("ref")
        turn = next((t for t in self.log.turns if t.id == ref), None)
        if turn is None or turn.acked:
            return
        # Not accepted (busy, rate limited): it stays in the outbox, sent again after a while.
        await asyncio.sleep(float(frame.get("retry_after_s") or 1.0))
        await self._send_chat(ws, turn)

    # ---------------------------------------------------------------- receiving

    def _ack(self, turn_id: str) -> None:
        turn = next((t for t in self.log.turns if t.id == turn_id), None)
        if turn is not None and not turn.acked:
            turn.acked = True
            self.log.acks.append(turn_id)
            self._on_ack(self.log, turn_id)

    def _apply(self, frame: Frame) -> None:
        seq = int(frame["seq"])
        if seq <= self.log.last_seq:
            self.log.repeats += 1
            return
        if seq > self.log.last_seq + 1:
            # Events missing in between: a broken promise; a fresh connection from last_seq
            # is what a client does about it.
            self.log.gaps += 1
            raise Reconnect
        self.log.live[seq] = frame
        self.log.last_seq = seq
        if frame["type"] == "typing" and frame.get("is_typing") is False:
            turn = next((t for t in self.log.turns if t.id == frame.get("turn_id")), None)
            if turn is not None:
                turn.ended = True


async def replay(url: str, token: str, session_id: str, timeout: float = 60) -> list[Frame]:
    """Every stored event of the session, from a fresh connection with last_seq 0."""
    async with connect(url, open_timeout=10, max_size=None, ping_interval=None) as ws:
        init = {"type": "init", "token": token, "session_id": session_id, "last_seq": 0}
        await ws.send(json.dumps(init))
        deadline = time.monotonic() + timeout
        connected: Frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if connected.get("type") != "connected":
            raise RuntimeError(f"replay of {session_id}: {connected}")
        total = int(connected["last_seq"])
        out: list[Frame] = []
        while len(out) < total:
            remaining = deadline - time.monotonic()
            frame: Frame = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, remaining)))
            if "seq" in frame:
                out.append(frame)
        return out
