"""One load-client process: its share of the sockets, the commands it runs, what it measured.

The parent (ClientPool, clients.py) sends each command through a pipe; the worker does its share
on one asyncio loop and answers once.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import os
import random
import time
import traceback
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

from bench.client_frames import (
    CLOSE,
    EIO_PONG,
    INIT,
    PATHS,
    PING,
    PONG_PREFIX,
    SIO_CONNECT,
    Dialect,
    init_frames,
    text_frame,
)
from bench.client_socket import HandshakeError, Socket, Turn


class Worker:
    """One client process: its share of the sockets and what they measured."""

    def __init__(self, pipe: Connection, index: int) -> None:
        self.pipe = pipe
        self.index = index
        self.tag = f"b{index}{os.urandom(3).hex()}"  # turn ids unique across pools and runs
        self.loop = asyncio.get_running_loop()
        self.dialect: Dialect = "ours"
        self.send_init = True
        self.sockets: list[Socket] = []
        self.unexpected_closes = 0
        self.close_codes: dict[int, int] = {}  # close frames from the server, by code
        self.close_walls: dict[int, list[float]] = {}  # when each came (wall clock), by code
        self.heartbeat: asyncio.Task[None] | None = None
        self.heartbeat_latencies: list[float] = []
        self.recording = False
        self.events: list[tuple[str, int, float]] = []
        self.protocol_errors: list[str] = []
        self.idle: collections.deque[Socket] = collections.deque()
        self.finished: list[Turn] = []
        self.turns_started = 0

    async def serve(self) -> None:
        commands: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
            "open": self.open,
            "heartbeat": self.set_heartbeat,
            "ping_spread": self.ping_spread,
            "ping_burst": self.ping_burst,
            "record": self.record,
            "collect": self.collect,
            "turns": self.turns,
            "status": self.status,
            "closes": self.closes,
            "close_all": self.close_all,
        }
        while True:
            name, kwargs = await self.loop.run_in_executor(None, self.pipe.recv)
            if name == "exit":
                await self.close_all()
                self.pipe.send({})
                return
            try:
                result = await commands[name](**kwargs)
            except Exception as exc:
                result = {"error": f"{exc!r}\n{traceback.format_exc()}"}
            self.pipe.send(result)

    # ---------------------------------------------------------------- socket callbacks

    def on_upgraded(self, sock: Socket) -> None:
        if self.dialect == "ours" and self.send_init:
            sock.write(sock.init)
        elif self.dialect == "bare" or self.dialect == "ours":
            sock.opened.set_result(None)
        # socketio: wait for the Engine.IO open packet ("0{...}").

    def on_lost(self, sock: Socket) -> None:
        if sock.opened.done() and not sock.expected_close:
            self.unexpected_closes += 1

    def on_message(self, sock: Socket, payload: bytes) -> None:
        dialect = self.dialect
        if payload.startswith(PONG_PREFIX[dialect]):
            if sock.ping_sent and sock.ping_sink is not None:
                sock.ping_sink.append(time.perf_counter() - sock.ping_sent)
            sock.ping_sent = 0.0
            return
        if dialect == "socketio":
            if payload == b"2":
                sock.write(EIO_PONG)
            elif payload.startswith(b"0{"):
                sock.write(SIO_CONNECT)
            elif payload.startswith(b"40") and not sock.opened.done():
                sock.opened.set_result(None)
            return
        if dialect == "bare":
            return
        obj = json.loads(payload)
        if "seq" in obj:
            self.on_event(sock, obj)
            return
        kind = obj.get("type")
        if kind == "connected" and not sock.opened.done():
            sock.session_id = obj["session_id"]
            sock.opened.set_result(None)
        elif kind == "ack" and sock.turn is not None and obj.get("id") == sock.turn.turn_id:
            sock.turn.ack = time.perf_counter()
        elif kind == "error":
            self.protocol_errors.append(payload.decode(errors="replace")[:200])
            if sock.turn is not None and obj.get("ref") == sock.turn.turn_id:
                sock.turn.errors.append(str(obj.get("code")))
                self.end_turn(sock)

    def on_event(self, sock: Socket, obj: dict[str, Any]) -> None:
        if self.recording and sock.session_id is not None:
            self.events.append((sock.session_id, int(obj["seq"]), time.time()))
        turn = sock.turn
        if turn is None or obj.get("turn_id") != turn.turn_id:
            return
        now = time.perf_counter()
        kind = obj.get("type")
        if kind == "chat" and obj.get("role") == "assistant":
            if turn.first_piece is None:
                turn.first_piece = now
            if obj.get("final"):
                turn.final = now
        elif kind == "typing" and obj.get("is_typing") is False:
            turn.end = now
            self.end_turn(sock)
        elif kind == "error":
            turn.errors.append(str(obj.get("code")))

    def end_turn(self, sock: Socket) -> None:
        if sock.turn is not None:
            self.finished.append(sock.turn)
            sock.turn = None
            if not sock.closed:
                self.idle.append(sock)

    # ---------------------------------------------------------------- commands

    async def open(
        self,
        host: str,
        port: int,
        dialect: Dialect,
        count: int,
        concurrency: int = 64,
        timeout_s: float = 30.0,
        init: bool = True,
    ) -> dict[str, Any]:
        """Open `count` more sockets (and init them, unless not `init`): how many opened."""
        self.dialect = dialect
        self.send_init = init
        key = base64.b64encode(os.urandom(16)).decode()
        handshake = (
            f"GET {PATHS[dialect]} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        gate = asyncio.Semaphore(concurrency)
        errors: list[str] = []
        new: list[Socket] = []
        inits = await init_frames(dialect, count) if init else [INIT] * count
        started = time.perf_counter()

        async def one(init_frame: bytes) -> None:
            async with gate:
                sock = Socket(self, handshake, init_frame)
                try:
                    await asyncio.wait_for(
                        self.loop.create_connection(lambda: sock, host, port), timeout_s
                    )
                    await asyncio.wait_for(asyncio.shield(sock.opened), timeout_s)
                except (OSError, TimeoutError, HandshakeError) as exc:
                    errors.append(repr(exc))
                    sock.close()
                    return
                new.append(sock)
                # Held at once, so a running heartbeat reaches it from its next round: a socket
                # left silent until the last one opens would meet the edge's idle limit.
                self.sockets.append(sock)

        await asyncio.gather(*(one(f) for f in inits))
        return {
            "opened": len(new),
            "failed": len(errors),
            "errors": errors[:3],
            "seconds": time.perf_counter() - started,
            "session_ids": [s.session_id for s in new if s.session_id],
        }

    async def set_heartbeat(self, interval_s: float) -> dict[str, Any]:
        """Every socket pings every `interval_s` (0: off), spread evenly over the interval."""
        if self.heartbeat is not None:
            self.heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.heartbeat
            self.heartbeat = None
        latencies, self.heartbeat_latencies = self.heartbeat_latencies, []
        if interval_s > 0:
            self.heartbeat = self.loop.create_task(self._beat(interval_s))
        return {"latencies": latencies}

    async def _beat(self, interval_s: float) -> None:
        while True:
            await self._pings(len(self.sockets) / interval_s, interval_s, self.heartbeat_latencies)

    async def _pings(self, rate: float, duration_s: float, sink: list[float]) -> int:
        """Pings at `rate` a second for `duration_s`, round robin; returns how many were sent."""
        live = [s for s in self.sockets if not s.closed]
        if not live or rate <= 0:
            await asyncio.sleep(duration_s)
            return 0
        ping, interval = PING[self.dialect], 1.0 / rate
        start = time.perf_counter()
        due, end, i, sent = start, start + duration_s, 0, 0
        while due < end:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sock = live[i % len(live)]
            i += 1
            due += interval
            if sock.closed or sock.ping_sent:
                continue
            sock.ping_sink = sink
            sock.ping_sent = time.perf_counter()
            sock.write(ping)
            sent += 1
        return sent

    async def ping_spread(self, rate: float, duration_s: float) -> dict[str, Any]:
        latencies: list[float] = []
        sent = await self._pings(rate, duration_s, latencies)
        await self._settle(lambda: len(latencies) >= sent, 5.0)
        return {"latencies": latencies, "sent": sent}

    async def ping_burst(self, at_wall: float, timeout_s: float = 10.0) -> dict[str, Any]:
        """At wall time `at_wall` every socket pings at once (the other workers too)."""
        live = [s for s in self.sockets if not s.closed and not s.ping_sent]
        ping = PING[self.dialect]
        latencies: list[float] = []
        await asyncio.sleep(max(0.0, at_wall - time.time()))
        start = time.perf_counter()
        for sock in live:
            sock.ping_sink = latencies
            sock.ping_sent = time.perf_counter()
            sock.write(ping)
        span = time.perf_counter() - start
        await self._settle(lambda: len(latencies) >= len(live), timeout_s)
        for sock in live:
            sock.ping_sent = 0.0
        return {"latencies": latencies, "sent": len(live), "send_span": span}

    async def record(self, on: bool) -> dict[str, Any]:
        self.recording = on
        if on:
            self.events = []
        return {}

    async def collect(self) -> dict[str, Any]:
        events, self.events = self.events, []
        errors, self.protocol_errors = self.protocol_errors, []
        return {"events": events, "protocol_errors": errors}

    async def turns(
        self,
        rate: float,
        duration_s: float,
        max_turns: int,
        content: str,
        timeout_s: float,
        one_at_a_time: bool = False,
    ) -> dict[str, Any]:
        """Turns on this worker's sessions, each on a session with no turn running.

        Open loop: a turn every 1/rate s; skipped when no session is idle. `one_at_a_time`:
        the next turn starts when the last one has ended, after a pause of 0.5 to 1.5 times
        1/rate (so it meets the pipeline at a random moment), on the next session in turn.
        """
        self.idle = collections.deque(s for s in self.sockets if s.session_id and not s.closed)
        self.finished = []
        sessions = len(self.idle)
        skipped, started = 0, 0
        interval = 1.0 / rate
        start = time.perf_counter()
        due, end = start, start + duration_s
        while due < end and started < max_turns:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if one_at_a_time:
                await self._settle(self._ended(started), timeout_s)
                due = time.perf_counter() + interval * random.uniform(0.5, 1.5)
                if started and due >= end:
                    break
                await asyncio.sleep(due - time.perf_counter())
            else:
                due += interval
            if not self.idle:
                skipped += 1
                continue
            sock = self.idle.popleft()
            self.turns_started += 1
            turn_id = f"{self.tag}-{self.turns_started}"
            sock.turn = Turn(turn_id, time.perf_counter(), time.time())
            # The marker lets the fake model say when this turn's request reached it.
            chat = {"type": "chat", "id": turn_id, "content": f"{content} [[{turn_id}]]"}
            sock.write(text_frame(chat))
            started += 1
        sent_for = time.perf_counter() - start
        await self._settle(lambda: len(self.finished) >= started, timeout_s)
        unfinished = [s.turn for s in self.sockets if s.turn is not None]
        for sock in self.sockets:
            sock.turn = None
        return {
            "sessions": sessions,
            "started": started,
            "skipped": skipped,
            "seconds": sent_for,
            "turns": [t.summary() for t in self.finished],
            "unfinished": [t.summary() for t in unfinished if t is not None],
        }

    def _ended(self, count: int) -> Callable[[], bool]:
        return lambda: len(self.finished) >= count

    async def status(self) -> dict[str, Any]:
        return {
            "open": sum(1 for s in self.sockets if not s.closed),
            "unexpected_closes": self.unexpected_closes,
            "close_codes": self.close_codes,
        }

    async def closes(self, since_wall: float, code: int) -> dict[str, Any]:
        """When the server's close frames with `code` came, from `since_wall` on (seconds)."""
        return {
            "after_s": [w - since_wall for w in self.close_walls.get(code, []) if w >= since_wall],
            "open": sum(1 for s in self.sockets if not s.closed),
            "unexpected_closes": self.unexpected_closes,
        }

    async def close_all(self) -> dict[str, Any]:
        await self.set_heartbeat(0)
        for sock in self.sockets:
            if not sock.closed:
                sock.write(CLOSE)
                sock.close()
        self.sockets = []
        await asyncio.sleep(0.2)
        return {}

    async def _settle(self, done: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.perf_counter() + timeout_s
        while not done() and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
