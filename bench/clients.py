"""Load clients: thousands of WebSockets held by a few worker processes.

The client that measures must not be what is measured. Each worker process holds its share of
the sockets on one asyncio loop with a minimal RFC 6455 client: one `asyncio.Protocol` per
socket and no task per socket, the handshake written by hand, every frame it sends masked and
built once before the clock starts, every frame it receives parsed in place (a pong is known by
its first bytes, without JSON). So a ping costs the client one `write` and a pong one callback.

The parent drives the workers through a pipe (`ClientPool.call`): a command goes to every worker,
each does its share, and each answers once. Three dialects share the client:

- `ours`: the deploychat protocol (`init`, then `ping`/`pong`, `chat`, stored events);
- `bare`: a server that only answers `{"type":"ping"}` with `{"type":"pong"}` (bench/peers.py);
- `socketio`: Engine.IO 4 / Socket.IO 5 over a WebSocket (`40` connect, `42["ping",…]` events,
  and the Engine.IO heartbeat `2` answered with `3`).

The parts: client_frames.py (the frames, built once), client_socket.py (one socket's protocol),
client_worker.py (one process's sockets and commands); here, the pool of worker processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from bench.client_frames import SOCKETS_PER_GUEST, Dialect, frame, text_frame
from bench.client_worker import Worker

__all__ = ["SOCKETS_PER_GUEST", "ClientPool", "Dialect", "frame", "text_frame"]


def _worker_main(pipe: Connection, index: int) -> None:
    async def main() -> None:
        await Worker(pipe, index).serve()

    asyncio.run(main())


class ClientPool:
    """Worker processes driven together: `call` sends a command to each and gathers replies."""

    def __init__(self, workers: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._pipes: list[Connection] = []
        self._procs: list[multiprocessing.process.BaseProcess] = []
        for index in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(child, index), daemon=True)
            proc.start()
            self._pipes.append(parent)
            self._procs.append(proc)

    def __enter__(self) -> ClientPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def size(self) -> int:
        return len(self._pipes)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    def call(
        self, command: str, each: Sequence[dict[str, Any]] | dict[str, Any], timeout_s: float = 600
    ) -> list[dict[str, Any]]:
        """Run `command` on every worker (`each`: one kwargs per worker, or the same for all)."""
        kwargs = [each] * self.size if isinstance(each, dict) else list(each)
        for pipe, args in zip(self._pipes, kwargs, strict=True):
            pipe.send((command, args))
        results: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        for pipe in self._pipes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"client worker did not answer {command!r} in {timeout_s}s")
            result: dict[str, Any] = pipe.recv()
            if "error" in result:
                raise RuntimeError(f"client worker failed {command!r}: {result['error']}")
            results.append(result)
        return results

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send(("exit", {}))
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        self._pipes, self._procs = [], []
