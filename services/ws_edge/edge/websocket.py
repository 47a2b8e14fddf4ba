"""The WebSocket protocol (RFC 6455), server side, as much of it as the chat needs.

flask-sock / simple-websocket / wsproto served this before: with them a ping cost the edge
about 50 µs of CPU (now about 30, most of the difference wsproto's general-purpose frame
parser) and an idle socket 4-5 KB more. The chat needs only this: the opening handshake, text
frames in and out, fragmented messages, ping/pong, the closing handshake, and the size limit.
No extension is ever negotiated (a permessage-deflate zlib context per socket costs more than
our small JSON frames save), and no subprotocol.

Frames from a client that break the protocol close the socket: 1002 (protocol error), 1007 (text
that is not UTF-8), 1009 (a message over the size limit, whose bytes are skipped, not buffered).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009

RECEIVE_BYTES = 4096


class ConnectionClosed(Exception):
    """The socket is closed (or closing): nothing more can be sent."""


class HandshakeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def handshake(environ: Mapping[str, Any]) -> bytes:
    """The server's answer to a WebSocket upgrade request (a WSGI environ), or HandshakeError."""
    if "websocket" not in environ.get("HTTP_UPGRADE", "").lower():
        raise HandshakeError(400, "not a WebSocket upgrade")
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION") != "13":
        raise HandshakeError(426, "WebSocket version 13 only")
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "")
    try:
        valid = len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        valid = False
    if not valid:
        raise HandshakeError(400, "bad Sec-WebSocket-Key")
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    ).encode()


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, final frame (server to client)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, n))
    elif n < 1 << 16:
        header = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return header + payload


def unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if not n:
        return payload
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class _Violation(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _refusal(
    b0: int, masked: int, opcode: int, fin: int, length: int, size: int, limit: int
) -> tuple[int, str] | None:
    """Why a frame, known by its header, must close the socket (code, reason), if it must."""
    if b0 & 0x70 or not masked:
        return CLOSE_PROTOCOL_ERROR, "unmasked frame or reserved bits"
    if opcode >= OP_CLOSE and (not fin or length > 125):
        return CLOSE_PROTOCOL_ERROR, "bad control frame"
    if opcode < OP_CLOSE and size + length > limit:
        return CLOSE_TOO_BIG, "message too big"
    return None


class WebSocket:
    """One server-side WebSocket over a connected socket whose handshake is done.

    `serve` reads in the calling thread (greenlet) until the socket closes; `send` and `close`
    may be called from any other.
    """

    def __init__(self, sock: socket.socket, max_message_size: int) -> None:
        self.sock = sock
        self.max_message_size = max_message_size
        self.closing = False  # a close frame was sent: nothing more may be
        self._send_lock = threading.Lock()

    def send(self, text: str) -> None:
        """Send one text message; ConnectionClosed once the socket is closing."""
        self._write(frame(OP_TEXT, text.encode()))

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Start the closing handshake: the socket closes when the client answers it."""
        if self.closing:
            return
        data = frame(OP_CLOSE, code.to_bytes(2, "big") + reason.encode()[:123])
        with self._send_lock:
            self.closing = True
            with contextlib.suppress(OSError):
                self.sock.sendall(data)

    def _write(self, data: bytes) -> None:
        with self._send_lock:
            if self.closing:
                raise ConnectionClosed()
            self.sock.sendall(data)

    def serve(self, on_message: Callable[[str | bytes], None]) -> None:
        """Read until the socket closes, handing each whole message to `on_message`."""
        try:
            self._read(on_message)
        except OSError:
            pass
        finally:
            self.closing = True
            with contextlib.suppress(OSError):
                self.sock.close()

    def _read(self, on_message: Callable[[str | bytes], None]) -> None:
        buffer = b""
        skip = 0  # bytes of a refused frame still to come, discarded as they arrive
        fragments: list[bytes] = []
        fragmented_opcode = 0
        size = 0  # of the fragmented message so far
        while True:
            data = self.sock.recv(RECEIVE_BYTES)
            if not data:
                return
            if skip:
                dropped = min(skip, len(data))
                skip, data = skip - dropped, data[dropped:]
            buffer = buffer + data if buffer else data
            pos, end = 0, len(buffer)
            while end - pos >= 2:
                b0, b1 = buffer[pos], buffer[pos + 1]
                length, head = b1 & 0x7F, 2
                if length == 126:
                    if end - pos < 4:
                        break
                    length, head = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
                elif length == 127:
                    if end - pos < 10:
                        break
                    length, head = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
                masked = b1 & 0x80
                start = pos + head + (4 if masked else 0)
                opcode, fin = b0 & 0x0F, b0 & 0x80
                refused = _refusal(b0, masked, opcode, fin, length, size, self.max_message_size)
                if refused is not None:
                    self.close(*refused)
                    fragments, size = [], 0
                    skip = max(0, start + length - end)
                    pos = min(end, start + length)
                    continue
                if end < start + length:
                    break
                payload = unmask(buffer[start : start + length], buffer[start - 4 : start])
                pos = start + length
                if opcode == OP_CLOSE:
                    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0
                    self.close(code if 1000 <= code < 5000 and code != CLOSE_NO_STATUS else 1000)
                    return
                if opcode == OP_PING:
                    self._pong(payload)
                    continue
                if opcode == OP_PONG or self.closing:
                    continue
                try:
                    message = self._assemble(opcode, fin, payload, fragments, fragmented_opcode)
                except _Violation as violation:
                    self.close(violation.code, violation.reason)
                    fragments, size = [], 0
                    continue
                if message is None:
                    if opcode != OP_CONTINUATION:
                        fragmented_opcode = opcode
                    size += length
                    continue
                fragments, size = [], 0
                on_message(message)
            buffer = buffer[pos:]

    def _assemble(
        self,
        opcode: int,
        fin: int,
        payload: bytes,
        fragments: list[bytes],
        fragmented_opcode: int,
    ) -> str | bytes | None:
        """The whole message this frame completes, or None while a message is fragmented."""
        if opcode == OP_CONTINUATION:
            if not fragments:
                raise _Violation(CLOSE_PROTOCOL_ERROR, "continuation of nothing")
            fragments.append(payload)
            if not fin:
                return None
            opcode, payload = fragmented_opcode, b"".join(fragments)
        elif opcode in (OP_TEXT, OP_BINARY):
            if fragments:
                raise _Violation(CLOSE_PROTOCOL_ERROR, "a new message inside a fragmented one")
            if not fin:
                fragments.append(payload)
                return None
        else:
            raise _Violation(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if opcode == OP_BINARY:
            return payload
        try:
            return payload.decode()
        except UnicodeDecodeError:
            raise _Violation(CLOSE_INVALID_DATA, "text that is not UTF-8") from None

    def _pong(self, payload: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            self._write(frame(OP_PONG, payload))
