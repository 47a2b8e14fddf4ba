"""The three peers the edge is compared with, each run as a process of its own.

- `bare`: the `websockets` library's asyncio server that only answers pings: the floor for a
  Python process holding WebSockets.
- `socketio`: python-socketio's AsyncServer on aiohttp, answering a `ping` event with `pong`: a
  popular way to hold many sockets in Python.
- `flasksock`: a plain flask-sock app under gunicorn's gevent worker answering pings
  (bench/flasksock_peer.py): the edge's own transport library with none of the edge's work.

`python -m bench.peers bare --port 9000` runs one in the foreground; `Peer` starts one for a
scenario and stops it after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

from devstack.processes import free_port, http_get

PeerKind = Literal["bare", "socketio", "flasksock"]
BACKLOG = 4096


async def serve_bare(port: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            obj = json.loads(message)
            if isinstance(obj, dict) and obj.get("type") == "ping":
                await ws.send(
                    json.dumps({"type": "pong", "ts": obj.get("ts")}, separators=(",", ":"))
                )

    async def health(connection: Any, request: Any) -> Any:
        if request.path == "/healthz":
            return connection.respond(200, "ok\n")
        return None

    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        # Only answer pings: no keepalive pings of its own (the edge sends none either).
        ping_interval=None,
        process_request=health,
        backlog=BACKLOG,
    ) as server:
        await server.serve_forever()


def serve_socketio(port: int) -> None:
    import socketio
    from aiohttp import web

    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    sio.attach(app)

    @sio.event  # type: ignore[untyped-decorator]
    async def ping(sid: str, data: Any) -> None:
        await sio.emit("pong", data, to=sid)

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app.router.add_get("/healthz", health)
    web.run_app(app, host="127.0.0.1", port=port, backlog=BACKLOG, print=None)


class Peer:
    """A peer server in a child process."""

    def __init__(self, kind: PeerKind, log_dir: Path) -> None:
        self.kind = kind
        self.port = free_port()
        self.log_path = log_dir / f"peer-{kind}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def server_pid(self) -> int:
        """The process that holds the sockets: gunicorn's worker, not its master."""
        if self.kind != "flasksock":
            return self.pid
        import psutil

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = psutil.Process(self.pid).children()
            if children:
                return int(children[0].pid)
            time.sleep(0.1)
        raise RuntimeError("the flask-sock peer's gunicorn has no worker")

    def __enter__(self) -> Peer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self._argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"peer {self.kind} exited; see {self.log_path}")
            with contextlib.suppress(OSError):
                if http_get(f"http://127.0.0.1:{self.port}/healthz")[0] == 200:
                    return self
            time.sleep(0.1)
        raise TimeoutError(f"peer {self.kind} did not start; see {self.log_path}")

    def _argv(self) -> list[str]:
        if self.kind != "flasksock":
            return [sys.executable, "-m", "bench.peers", self.kind, "--port", str(self.port)]
        return [
            *(sys.executable, "-m", "gunicorn", "--worker-class", "gevent", "--workers", "1"),
            *("--worker-connections", "20000", "--backlog", str(BACKLOG), "--timeout", "60"),
            *("--bind", f"127.0.0.1:{self.port}", "--log-level", "warning"),
            "bench.flasksock_peer:app",
        ]

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers")
    parser.add_argument("kind", choices=["bare", "socketio", "flasksock"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.kind == "bare":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_bare(args.port))
    elif args.kind == "flasksock":
        peer = Peer("flasksock", Path("."))
        peer.port = args.port
        os.execv(sys.executable, peer._argv())
    else:
        serve_socketio(args.port)


if __name__ == "__main__":
    main()
