"""Scenario 6: 5,000 sockets of which 10 % never read.

The readers are the capacity scenario's clients (bench/clients.py). The others stop reading right
after `connected` (a 4 KB receive buffer, nothing read from it again), and each then sends
`slow_frames` frames the edge must answer (an unknown frame type with a 240-character id, which
the error echoes as its `ref`: about 300 bytes of answer each, 12 KB in all for 40). Their
answers overflow the client's buffer and wait in the edge's kernel, unread; the edge must drop
each of them within its write limit (10 s), keep what it holds for them bounded, and keep
answering everyone else. Measured:

- the edge's RSS with all sockets open, at its peak while the stalled ones' answers wait, and
  after the write limit has passed (growth over the stalled sockets: what the edge holds for a
  socket that does not read). Not RSS per socket: the scenarios before this one leave the
  worker's heap grown, so a baseline here would not be an empty worker's;
- how many stalled sockets the edge dropped, read back at the end;
- the readers' ping p50/p99, spread (200 a second) and all at once, while the others stall;
- then the drain (PROTOCOL.md: SIGTERM closes every socket with 1012, in parallel): new stalled
  sockets send `drain_frames` (600: more answers than the buffers on both ends hold) and stall
  for `drain_stall_s`, so the edge's writes to them block, and the edge worker
  gets SIGTERM. Measured from the signal: when each reader got its 1012 (target: all within
  2 s), readers closed without one, and the stalled sockets dropped. This ends the edge worker,
  so it comes last (gunicorn's master starts another).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.connection import Connection
from typing import Any

import psutil

from bench.clients import SOCKETS_PER_GUEST, ClientPool, frame, text_frame
from bench.harness import rss
from bench.plan import Plan
from bench.stats import close_codes, ms, split

log = logging.getLogger("bench")

RECEIVE_BUFFER = 4096
# Unknown type: refused with an error that echoes the id (a `ref` of up to 256 characters).
AMPLIFIER = frame(json.dumps({"type": "x", "id": "r" * 240}).encode())


def run(port: int, server: psutil.Process, plan: Plan) -> dict[str, Any]:
    total = plan.slow_sockets
    stalled = max(1, round(total * plan.slow_share))
    readers = total - stalled
    base = rss(server)
    with ClientPool(plan.workers) as pool, Stallers(port, stalled) as stallers:
        target = {"host": "127.0.0.1", "port": port, "dialect": "ours"}
        # Beating from the start: opening 5,000 signed-in sockets takes longer than the edge's
        # 75 s idle limit, and the first readers would otherwise be closed 1001 meanwhile.
        pool.call("heartbeat", {"interval_s": plan.heartbeat_s})
        opened = pool.call(
            "open",
            [
                {**target, "count": n, "concurrency": plan.open_concurrency}
                for n in split(readers, pool.size)
            ],
        )
        held = sum(r["opened"] for r in opened)
        stalled_open = stallers.opened()
        log.info("slow readers: %d readers and %d stalled sockets open", held, stalled_open)
        time.sleep(plan.settle_s)
        all_open = rss(server)
        stallers.stall(plan.slow_frames)
        started = time.monotonic()
        spread = pool.call(
            "ping_spread",
            {"rate": plan.spread_rate / pool.size, "duration_s": plan.spread_s},
            timeout_s=plan.spread_s + 60,
        )
        bursts = [_burst(pool) for _ in range(plan.bursts + 1)][1:]  # the first: warm-up
        peak = rss(server)
        # Past the edge's write limit, every stalled socket should be gone.
        time.sleep(max(0.0, plan.slow_wait_s - (time.monotonic() - started)))
        after = rss(server)
        dropped = stallers.finish()
        status = pool.call("status", {})
        drain = _drain(pool, stallers, server, plan) if plan.drain else None
        pool.call("close_all", {})
    burst_latencies = [x for b in bursts for x in b["latencies"]]
    return {
        "sockets": held + stalled_open,
        "readers": held,
        "stalled": stalled_open,
        "stalled_frames_each": plan.slow_frames,
        "waited_s": plan.slow_wait_s,
        "stalled_dropped": dropped,
        # Dropped without a close frame, or sent one (any code: nothing here should close one).
        "readers_closed": sum(
            s["unexpected_closes"] + sum(s["close_codes"].values()) for s in status
        ),
        "readers_close_codes": close_codes(status),
        "base_rss_mb": round(base / 2**20, 1),
        "rss_mb": round(all_open / 2**20, 1),
        "rss_peak_mb": round(peak / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
        "growth_mb": round((max(peak, after) - all_open) / 2**20, 1),
        "spread": {
            "sent": sum(r["sent"] for r in spread),
            "lost": sum(r["sent"] - len(r["latencies"]) for r in spread),
            **ms([x for r in spread for x in r["latencies"]], 50, 99),
        },
        "burst": {
            "sent": sum(b["sent"] for b in bursts),
            "lost": sum(b["lost"] for b in bursts),
            **ms(burst_latencies, 50, 99),
        },
        "drain": drain,
    }


def _drain(
    pool: ClientPool, stallers: Stallers, server: psutil.Process, plan: Plan
) -> dict[str, Any]:
    """SIGTERM to the edge worker with the readers open and fresh stalled sockets stalling."""
    stalled = stallers.opened()
    stallers.stall(plan.drain_frames)
    time.sleep(plan.drain_stall_s)
    before = pool.call("status", {})
    readers = sum(s["open"] for s in before)
    codes = close_codes(before)
    signalled = time.time()  # the clock starts before the signal is sent
    server.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + plan.drain_wait_s
    while time.monotonic() < deadline:
        if sum(s["open"] for s in pool.call("status", {})) == 0:
            break
        time.sleep(0.1)
    closes = pool.call("closes", {"since_wall": signalled, "code": 1012})
    after = sorted(x for c in closes for x in c["after_s"])
    time.sleep(max(0.0, signalled + plan.drain_stalled_s - time.time()))
    return {
        "readers": readers,
        # Readers that were gone before the signal, and the close codes they had been sent.
        "readers_closed_before": sum(s["unexpected_closes"] for s in before),
        "close_codes_before": codes,
        "stalled": stalled,
        "readers_1012": len(after),
        "readers_left_open": sum(c["open"] for c in closes),
        "after": ms(after, 50, 99),
        "last_s": round(after[-1], 3) if after else None,
        "stalled_read_after_s": plan.drain_stalled_s,
        "stalled_dropped": stallers.finish(),
    }


def _burst(pool: ClientPool) -> dict[str, Any]:
    results = pool.call("ping_burst", {"at_wall": time.time() + 0.5, "timeout_s": 10.0})
    latencies = [x for r in results for x in r["latencies"]]
    sent = sum(r["sent"] for r in results)
    time.sleep(0.3)
    return {"latencies": latencies, "sent": sent, "lost": sent - len(latencies)}


# ---------------------------------------------------------------- the stalled sockets' process


class Stallers:
    """A child process holding the sockets that stop reading (so the readers' clients, and
    this process, are never slowed by them)."""

    def __init__(self, port: int, count: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._pipe, child = ctx.Pipe()
        self._proc = ctx.Process(target=_main, args=(child, port, count), daemon=True)

    def __enter__(self) -> Stallers:
        self._proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._pipe.send(("exit", 0))
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)

    def _call(self, command: str, arg: int, timeout_s: float = 300) -> int:
        self._pipe.send((command, arg))
        if not self._pipe.poll(timeout_s):
            raise TimeoutError(f"the stalled sockets' process did not answer {command!r}")
        answer: int | str = self._pipe.recv()
        if isinstance(answer, str):
            raise RuntimeError(f"the stalled sockets' process failed: {answer}")
        return answer

    def opened(self) -> int:
        return self._call("open", 0)

    def stall(self, frames: int) -> None:
        self._call("stall", frames)

    def finish(self) -> int:
        """How many of the stalled sockets the server has dropped."""
        return self._call("finish", 0)


def _main(pipe: Connection, port: int, count: int) -> None:
    asyncio.run(_serve(pipe, port, count))


async def _serve(pipe: Connection, port: int, count: int) -> None:
    loop = asyncio.get_running_loop()
    socks: list[socket.socket] = []
    sending: list[asyncio.Task[None]] = []
    while True:
        command, arg = await loop.run_in_executor(None, pipe.recv)
        try:
            if command == "open":
                socks = await _open_all(port, count)
                pipe.send(len(socks))
            elif command == "stall":
                # In the background: once its answers fill the buffers, the edge may stop
                # reading from a socket too, and then these sends wait until it is dropped.
                sending = [loop.create_task(_send(s, AMPLIFIER * arg)) for s in socks]
                pipe.send(0)
            elif command == "finish":
                for task in sending:
                    task.cancel()
                await asyncio.gather(*sending, return_exceptions=True)
                pipe.send(sum(await asyncio.gather(*(_dropped(s) for s in socks))))
            else:
                for s in socks:
                    s.close()
                return
        except Exception as exc:
            pipe.send(repr(exc))


async def _open_all(port: int, count: int) -> list[socket.socket]:
    inits = _inits(count)
    gate = asyncio.Semaphore(32)

    async def one(init: bytes) -> socket.socket | None:
        async with gate:
            try:
                return await asyncio.wait_for(_open(port, init), 60)
            except (OSError, TimeoutError, ValueError):
                return None

    opened = await asyncio.gather(*(one(i) for i in inits))
    return [s for s in opened if s is not None]


def _inits(count: int) -> list[bytes]:
    """`init` frames: with a guest's ID token when the edge signs in (as bench/client_frames.py)."""
    if not os.environ.get("FIREBASE_AUTH_EMULATOR_HOST"):
        return [frame(b'{"type":"init"}')] * count
    from tests.support.identity import sign_up_guest

    users = [sign_up_guest() for _ in range(-(-count // SOCKETS_PER_GUEST))]
    return [
        text_frame({"type": "init", "token": users[i // SOCKETS_PER_GUEST].id_token})
        for i in range(count)
    ]


async def _open(port: int, init: bytes) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Before connect, so the window it offers stays small.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(
            sock,
            (
                f"GET /ws/chat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode(),
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                raise ValueError("closed during the handshake")
            data += chunk
        if b" 101 " not in data.split(b"\r\n", 1)[0]:
            raise ValueError(data.split(b"\r\n", 1)[0].decode(errors="replace"))
        data = data.split(b"\r\n\r\n", 1)[1]
        await loop.sock_sendall(sock, init)
        while b'"connected"' not in data:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                raise ValueError("closed before connected")
            data += chunk
    except BaseException:
        sock.close()
        raise
    return sock


async def _send(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        await asyncio.get_running_loop().sock_sendall(sock, data)


async def _dropped(sock: socket.socket) -> int:
    """1 if the server has ended the connection: read what is buffered until EOF or reset."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 2.0)
            if not chunk:
                return 1
    except (ConnectionResetError, BrokenPipeError):
        return 1
    except TimeoutError:
        return 0
