"""A bare protocol client for tests: frames in and out, nothing hidden (no reconnects)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support.identity import current_user

Frame = dict[str, Any]
HEARTBEAT_S = 25.0
HEARTBEAT_TS = -7.0  # marks the heartbeat's own pings


class RawClient:
    """`token`: the ID token `init` carries; by default the test's own user's (a guest signed
    up on the Auth emulator), so every socket of one test may resume its sessions. `token=""`
    sends none."""

    def __init__(self, url: str, token: str | None = None, **kwargs: Any) -> None:
        if token is None and os.environ.get("FIREBASE_AUTH_EMULATOR_HOST"):
            token = current_user().id_token
        self.token = token or None
        self._connection = connect(url, open_timeout=10, max_size=None, **kwargs)
        self.ws: ClientConnection = self._connection.__enter__()
        self.received: list[Frame] = []

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._connection.__exit__(None, None, None)

    def send(self, frame: Frame | str | bytes) -> None:
        self.ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    def recv(self, timeout: float = 10.0) -> Frame:
        """The next frame. Like any client, it sends a heartbeat while it waits (the edge
        closes a socket it has heard nothing from for 75 s); those pongs are not returned."""
        deadline = time.monotonic() + timeout
        while True:
            wait = min(HEARTBEAT_S, deadline - time.monotonic())
            try:
                frame: Frame = json.loads(self.ws.recv(timeout=max(0.0, wait)))
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise
                self.send({"type": "ping", "ts": HEARTBEAT_TS})
                continue
            if frame == {"type": "pong", "ts": HEARTBEAT_TS}:
                continue
            self.received.append(frame)
            return frame

    def init(self, **fields: Any) -> Frame:
        if self.token is not None:
            fields.setdefault("token", self.token)
        self.send({"type": "init", **fields})
        frame = self.recv()
        assert frame["type"] == "connected", frame
        return frame

    def until(self, done: Callable[[Frame], bool], timeout: float = 30.0) -> list[Frame]:
        """Frames up to and including the first for which `done` is true."""
        out: list[Frame] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"gave up waiting; got {out}")
            frame = self.recv(timeout=remaining)
            out.append(frame)
            if done(frame):
                return out

    def turn(self, turn_id: str, timeout: float = 30.0) -> list[Frame]:
        """Everything until the turn's typing stops."""
        return self.until(lambda f: is_turn_end(f, turn_id), timeout)

    def closed_code(self, timeout: float = 10.0) -> int | None:
        try:
            while True:
                self.ws.recv(timeout=timeout)
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None


def is_turn_end(frame: Frame, turn_id: str) -> bool:
    return (
        frame.get("type") == "typing"
        and frame.get("turn_id") == turn_id
        and frame.get("is_typing") is False
    )


def events(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if "seq" in f]


def assert_contiguous(frames: list[Frame], start: int = 1) -> None:
    seqs = [f["seq"] for f in events(frames)]
    assert seqs == list(range(start, start + len(seqs))), seqs


def reply_text(frames: list[Frame], turn_id: str) -> tuple[str, Frame]:
    """(the concatenated deltas, the final frame) of a turn's assistant message."""
    mine = [
        f
        for f in events(frames)
        if f["type"] == "chat" and f["role"] == "assistant" and f["turn_id"] == turn_id
    ]
    finals = [f for f in mine if f["final"]]
    assert len(finals) == 1, mine
    return "".join(f.get("delta", "") for f in mine if not f["final"]), finals[0]
