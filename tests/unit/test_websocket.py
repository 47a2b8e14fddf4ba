"""The edge's WebSocket codec (RFC 6455, server side) over a socket pair, frame by frame."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from edge.websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    HandshakeError,
    WebSocket,
    accept_key,
    handshake,
)


def client_frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = True) -> bytes:
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if masked else 0
    if n < 126:
        header = bytes((first, mask_bit | n))
    elif n < 1 << 16:
        header = bytes((first, mask_bit | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((first, mask_bit | 127)) + n.to_bytes(8, "big")
    if not masked:
        return header + payload
    key = os.urandom(4)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class Peer:
    """The client end: writes frames, reads the server's (unmasked) frames."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(5)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def frame(self) -> tuple[int, bytes]:
        b0, b1 = self._take(2)
        assert not b1 & 0x80, "server frames are not masked"
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(self._take(2), "big")
        elif n == 127:
            n = int.from_bytes(self._take(8), "big")
        return b0 & 0x0F, self._take(n)

    def close_code(self) -> int:
        opcode, payload = self.frame()
        assert opcode == OP_CLOSE, (opcode, payload)
        return int.from_bytes(payload[:2], "big")


@dataclass
class Pair:
    ws: WebSocket
    peer: Peer
    got: list[str | bytes]  # the messages the server handed on
    reader: threading.Thread  # the server's read loop

    def ended(self) -> bool:
        self.reader.join(5)
        return not self.reader.is_alive()


@pytest.fixture
def pair() -> Iterator[Pair]:
    server_sock, client_sock = socket.socketpair()
    ws = WebSocket(server_sock, max_message_size=1000)
    got: list[str | bytes] = []
    reader = threading.Thread(target=ws.serve, args=(got.append,), daemon=True)
    reader.start()
    yield Pair(ws, Peer(client_sock), got, reader)
    client_sock.close()
    reader.join(5)


def test_the_handshake_answers_with_the_rfc_accept_key() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    environ = {
        "HTTP_UPGRADE": "websocket",
        "HTTP_SEC_WEBSOCKET_VERSION": "13",
        "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==",
        "HTTP_SEC_WEBSOCKET_EXTENSIONS": "permessage-deflate",
    }
    answer = handshake(environ).decode()
    assert answer.startswith("HTTP/1.1 101 ")
    assert "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in answer
    assert "Extensions" not in answer, "no extension is ever negotiated"
    with pytest.raises(HandshakeError) as bad:
        handshake({**environ, "HTTP_SEC_WEBSOCKET_VERSION": "8"})
    assert bad.value.status == 426
    with pytest.raises(HandshakeError):
        handshake({**environ, "HTTP_SEC_WEBSOCKET_KEY": "short"})


def test_messages_in_and_out_whole_fragmented_and_across_reads(pair: Pair) -> None:
    ws, peer, got = pair.ws, pair.peer, pair.got
    peer.send(client_frame(OP_TEXT, b'{"type":"ping","ts":1}'))
    # A message in three fragments, with a ping between them, written one byte at a time.
    data = (
        client_frame(OP_TEXT, "hé".encode(), fin=False)
        + client_frame(OP_PING, b"are you there")
        + client_frame(OP_CONTINUATION, b"l", fin=False)
        + client_frame(OP_CONTINUATION, b"lo")
        + client_frame(OP_BINARY, b"\x00\x01")
    )
    for i in range(len(data)):
        peer.send(data[i : i + 1])
    assert peer.frame() == (OP_PONG, b"are you there")
    ws.send("x" * 300)  # a 16-bit length
    assert peer.frame() == (OP_TEXT, b"x" * 300)
    deadline = time.monotonic() + 5
    while len(got) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == ['{"type":"ping","ts":1}', "héllo", b"\x00\x01"]


def test_a_close_from_the_client_is_answered_and_ends_the_socket(pair: Pair) -> None:
    pair.peer.send(client_frame(OP_CLOSE, (1001).to_bytes(2, "big") + b"bye"))
    assert pair.peer.close_code() == 1001
    assert pair.ended() and pair.ws.closing


def test_a_close_from_the_server_waits_for_the_client_answer(pair: Pair) -> None:
    pair.ws.close(1012, "service restart")
    assert pair.peer.close_code() == 1012
    pair.peer.send(client_frame(OP_TEXT, b"too late"))
    assert pair.reader.is_alive()
    pair.peer.send(client_frame(OP_CLOSE, (1012).to_bytes(2, "big")))
    assert pair.ended() and pair.got == []


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (client_frame(OP_TEXT, b"x" * 1001), 1009),
        (client_frame(OP_TEXT, b"x" * 600, fin=False) + client_frame(0, b"x" * 600), 1009),
        (client_frame(OP_TEXT, b"\xff\xfe"), 1007),
        (client_frame(OP_TEXT, b"hi", masked=False), 1002),
        (client_frame(OP_CONTINUATION, b"orphan"), 1002),
        (client_frame(0x3, b"reserved opcode"), 1002),
        (client_frame(OP_PING, b"x", fin=False), 1002),
    ],
)
def test_frames_that_break_the_rules_close_the_socket(pair: Pair, data: bytes, code: int) -> None:
    pair.peer.send(data)
    assert pair.peer.close_code() == code
    # The client's own close ends it, whatever was left of the refused frame.
    pair.peer.send(client_frame(OP_CLOSE, code.to_bytes(2, "big")))
    assert pair.ended() and pair.got == []


def test_a_refused_big_frame_is_skipped_not_buffered(pair: Pair) -> None:
    big = client_frame(OP_TEXT, b"y" * 50_000)
    pair.peer.send(big[:10])
    assert pair.peer.close_code() == 1009
    pair.peer.send(big[10:] + client_frame(OP_CLOSE, (1000).to_bytes(2, "big")))
    assert pair.ended() and pair.got == []
