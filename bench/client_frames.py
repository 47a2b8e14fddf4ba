"""The load clients' wire: each dialect's path, masked client frames (RFC 6455), and the frames
each dialect sends.

What a socket sends is built once, before the clock starts: a ping, the answers to the server's
heartbeats, a close, each socket's `init`. The dialects are described in clients.py.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Literal

Dialect = Literal["ours", "bare", "socketio"]
PATHS: dict[Dialect, str] = {
    "ours": "/ws/chat",
    "bare": "/",
    "socketio": "/socket.io/?EIO=4&transport=websocket",
}

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One masked client frame (RFC 6455 section 5.2)."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = bytes([0x80 | opcode, 0x80 | n])
    elif n < 1 << 16:
        header = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    repeated = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")
    return header + key + masked


def text_frame(obj: Any) -> bytes:
    return frame(json.dumps(obj, separators=(",", ":")).encode())


# Built once: what a ping, the answers to the server's heartbeats, and a close cost the client.
PING: dict[Dialect, bytes] = {
    "ours": frame(b'{"type":"ping","ts":1}'),
    "bare": frame(b'{"type":"ping","ts":1}'),
    "socketio": frame(b'42["ping",{"ts":1}]'),
}
PONG_PREFIX: dict[Dialect, bytes] = {
    "ours": b'{"type":"pong"',
    "bare": b'{"type":"pong"',
    "socketio": b'42["pong"',
}
INIT = frame(b'{"type":"init"}')
# Sockets that share one guest user. One: the edge counts each user's new sessions in one
# Firestore document, in a transaction, and several sockets of one user opened at the same
# instant contend for it (on the emulator: "Transaction lock timeout"); people open one or two.
SOCKETS_PER_GUEST = 1
SIO_CONNECT = frame(b"40")
EIO_PONG = frame(b"3")
CLOSE = frame((1000).to_bytes(2, "big"), OP_CLOSE)


async def init_frames(dialect: Dialect, count: int) -> list[bytes]:
    """Each new socket's `init`: with an ID token when the edge signs users in (the stack's
    Auth emulator), a new guest for every SOCKETS_PER_GUEST sockets, signed up before the
    clock starts."""
    if dialect != "ours" or not os.environ.get("FIREBASE_AUTH_EMULATOR_HOST"):
        return [INIT] * count
    from concurrent.futures import ThreadPoolExecutor

    from tests.support.identity import sign_up_guest

    loop = asyncio.get_running_loop()
    guests = -(-count // SOCKETS_PER_GUEST)
    with ThreadPoolExecutor(8) as pool:
        users = await asyncio.gather(
            *(loop.run_in_executor(pool, sign_up_guest) for _ in range(guests))
        )
    return [
        text_frame({"type": "init", "token": users[i // SOCKETS_PER_GUEST].id_token})
        for i in range(count)
    ]
