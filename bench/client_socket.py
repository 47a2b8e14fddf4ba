"""One load-client WebSocket as an `asyncio.Protocol`: the handshake, and frames parsed in place.

No task per socket: a socket is a few attributes and callbacks, and what a message means is its
Worker's (client_worker.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.client_frames import (
    CLOSE,
    INIT,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    frame,
)

if TYPE_CHECKING:
    from bench.client_worker import Worker


class HandshakeError(Exception):
    pass


@dataclass
class Turn:
    """One chat turn as one client saw it (perf_counter times, and the wall time it was sent)."""

    turn_id: str
    sent: float
    sent_wall: float
    ack: float | None = None
    first_piece: float | None = None
    final: float | None = None
    end: float | None = None
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def since(t: float | None) -> float | None:
            return None if t is None else t - self.sent

        return {
            "turn_id": self.turn_id,
            "sent_wall": self.sent_wall,
            "ack": since(self.ack),
            "first_piece": since(self.first_piece),
            "final": since(self.final),
            "end": since(self.end),
            "errors": self.errors,
        }


class Socket(asyncio.Protocol):
    """One client WebSocket: a few attributes, no task."""

    def __init__(self, worker: Worker, handshake: bytes, init: bytes = INIT) -> None:
        self.worker = worker
        self.handshake = handshake
        self.init = init
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.opened: asyncio.Future[None] = worker.loop.create_future()
        self.closed = False
        self.expected_close = False
        self.fragments: bytearray | None = None
        self.session_id: str | None = None
        self.ping_sent = 0.0  # perf_counter of the outstanding ping; 0 when none
        self.ping_sink: list[float] | None = None
        self.turn: Turn | None = None

    # ---------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.handshake)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(HandshakeError(f"closed before it opened: {exc!r}"))
        self.worker.on_lost(self)

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = data
                return
            status = data[: data.find(b"\r\n")]
            if b" 101 " not in status:
                self.fail(HandshakeError(status.decode(errors="replace")))
                return
            self.upgraded = True
            data = data[end + 4 :]
            self.worker.on_upgraded(self)
        self.parse(data)

    # ---------------------------------------------------------------- frames

    def parse(self, data: bytes) -> None:
        pos, n = 0, len(data)
        while n - pos >= 2:
            b0, b1 = data[pos], data[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
            if n - pos < head + length:
                break
            payload = data[pos + head : pos + head + length]
            pos += head + length
            self.on_frame(b0, payload)
        if pos < n:
            self.buffer = data[pos:]

    def on_frame(self, b0: int, payload: bytes) -> None:
        opcode, fin = b0 & 0x0F, b0 & 0x80
        if opcode in (OP_TEXT, OP_BINARY):
            if fin:
                self.worker.on_message(self, payload)
            else:
                self.fragments = bytearray(payload)
        elif opcode == OP_CONT and self.fragments is not None:
            self.fragments += payload
            if fin:
                message, self.fragments = bytes(self.fragments), None
                self.worker.on_message(self, message)
        elif opcode == OP_PING:
            self.write(frame(payload, OP_PONG))
        elif opcode == OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.worker.close_codes[code] = self.worker.close_codes.get(code, 0) + 1
            self.worker.close_walls.setdefault(code, []).append(time.time())
            if not self.closed:
                self.write(CLOSE)
            self.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        self.expected_close = True
        if self.transport is not None:
            self.transport.close()

    def fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        self.close()
