"""A WebSocket client written from RFC 6455 at the socket level, for tests that must send what a
WebSocket library refuses to (reserved bits and opcodes, unmasked or oversized control frames,
bad close codes, text that is not UTF-8) and must tell a close frame from a dropped connection.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


class Dropped(Exception):
    """The server ended the TCP connection without a close frame."""


class Closed(Exception):
    """The server sent a close frame."""

    def __init__(self, code: int | None, reason: bytes) -> None:
        super().__init__(f"closed with {code} {reason!r}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Frame:
    fin: bool
    opcode: int
    payload: bytes


def mask(payload: bytes, key: bytes) -> bytes:
    """RFC 6455 5.3, on whole integers (fast enough for 64 KiB frames)."""
    if not payload:
        return b""
    n = len(payload)
    keystream = (key * (n // 4 + 1))[:n]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")
    return masked.to_bytes(n, "big")


def encode_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
) -> bytes:
    """One frame as a client sends it; any field may be wrong on purpose."""
    head = bytes([(0x80 if fin else 0) | ((rsv & 0x7) << 4) | (opcode & 0xF)])
    n = len(payload)
    bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + mask(payload, key)


def close_payload(code: int | None, reason: bytes = b"") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason


class RawSocket:
    """One TCP connection that did (or tried) the opening handshake.

    `status` is the HTTP status of the handshake's answer (101 when upgraded).
    """

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str | None] | None = None,
        timeout: float = 10.0,
        version: str = "13",
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
        self._buffer = bytearray()
        # Payloads of the pongs that answered our pings, in order.
        self.pongs: list[bytes] = []
        self.status, self.headers = self._handshake(headers or {}, version)

    def __enter__(self) -> RawSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    # ---------------------------------------------------------------- handshake

    def _handshake(self, extra: dict[str, str | None], version: str) -> tuple[int, dict[str, str]]:
        """Send the upgrade request (a header given as None is left out); read the answer."""
        key = base64.b64encode(os.urandom(16)).decode()
        fields: dict[str, str | None] = {
            "Host": f"{self.host}:{self.port}",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": version,
        }
        fields.update(extra)
        request = f"GET {self.path} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in fields.items() if value is not None
        )
        self.sock.sendall(request.encode() + b"\r\n")
        while b"\r\n\r\n" not in self._buffer:
            self._fill()
        end = self._buffer.index(b"\r\n\r\n")
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        status = int(head[0].split(" ")[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    # ---------------------------------------------------------------- writing

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, opcode: int, payload: bytes = b"", **options: Any) -> None:
        self.sock.sendall(encode_frame(opcode, payload, **options))

    def send_text(self, text: str | bytes) -> None:
        """A text frame; bytes are sent as they are (so they need not be UTF-8)."""
        self.send_frame(OP_TEXT, text.encode() if isinstance(text, str) else text)

    def send_json(self, obj: Any) -> None:
        self.send_text(json.dumps(obj))

    def send_close(self, code: int | None = 1000, reason: bytes = b"") -> None:
        self.send_frame(OP_CLOSE, close_payload(code, reason))

    # ---------------------------------------------------------------- reading

    def _fill(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError as exc:
            raise Dropped("connection reset") from exc
        if not chunk:
            raise Dropped("connection ended")
        self._buffer += chunk

    def _take(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._fill()
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def recv_frame(self, timeout: float | None = 10.0) -> Frame:
        """The next frame; Dropped if TCP ends first, TimeoutError if none comes in time."""
        self.sock.settimeout(timeout)
        first, second = self._take(2)
        n = second & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._take(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._take(8))
        key = self._take(4) if second & 0x80 else None
        payload = self._take(n)
        if key is not None:
            payload = mask(payload, key)
        return Frame(bool(first & 0x80), first & 0xF, payload)

    def recv_message(self, timeout: float | None = 10.0) -> str | bytes:
        """The next data message (the server does not fragment); Closed on a close frame.

        Pongs are noted in `pongs`; a close frame is answered (the closing handshake) before
        Closed.
        """
        while True:
            message = self._next(timeout)
            if message is not None:
                return message

    def _next(self, timeout: float | None) -> str | bytes | None:
        """One frame: a data message, or None for a control frame (handled here)."""
        frame = self.recv_frame(timeout)
        if frame.opcode == OP_TEXT:
            return frame.payload.decode()
        if frame.opcode == OP_BINARY:
            return frame.payload
        if frame.opcode == OP_CLOSE:
            code = struct.unpack("!H", frame.payload[:2])[0] if frame.payload else None
            # The closing handshake: echo the code (one that may be sent) back.
            with contextlib.suppress(OSError):
                self.send_close(code if code not in (None, 1005, 1006, 1015) else 1000)
            raise Closed(code, frame.payload[2:])
        if frame.opcode == OP_PING:
            self.send_frame(OP_PONG, frame.payload)
        elif frame.opcode == OP_PONG:
            self.pongs.append(frame.payload)
        return None

    def recv_json(self, timeout: float | None = 10.0) -> dict[str, Any]:
        message = self.recv_message(timeout)
        assert isinstance(message, str), message
        obj: dict[str, Any] = json.loads(message)
        return obj

    def wait_pong(self, payload: bytes, timeout: float = 10.0) -> list[str | bytes]:
        """Read until the pong that answers our ping `payload`; the messages read meanwhile."""
        messages: list[str | bytes] = []
        while payload not in self.pongs:
            message = self._next(timeout)
            if message is not None:
                messages.append(message)
        self.pongs.remove(payload)
        return messages

    def close_code(self, timeout: float = 10.0) -> int | None:
        """Read until the server's close frame; its code (Dropped if none comes). The
        messages that came before it are kept in `received`."""
        self.received: list[str | bytes] = []
        try:
            while True:
                self.received.append(self.recv_message(timeout))
        except Closed as closed:
            return closed.code
