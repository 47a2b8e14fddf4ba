"""A TCP proxy between a client and the edge that tests can break on purpose.

Plain TCP, so a page's HTTP requests and its WebSocket both go through it. A test can cut every
connection mid-stream, refuse new ones (all, or only WebSocket upgrades, so a page still loads
while its socket cannot connect), or stall the connections it has: they stay open but no byte
gets through, a dead link that only a heartbeat can notice.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator

_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets instead of a clean FIN


class _Pipe:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.stalled = False
        self._closed = False
        self._lock = threading.Lock()

    def start(self) -> None:
        for src, dst in ((self.client, self.upstream), (self.upstream, self.client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not self.stalled:
                    dst.sendall(data)
                # Stalled: keep reading (and dropping) so either side's close is still seen.
        except OSError:
            pass
        finally:
            self.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    @property
    def closed(self) -> bool:
        return self._closed


class TcpProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._pipes: list[_Pipe] = []
        self._lock = threading.Lock()
        self._running = False
        self._refuse_all = False
        self._refuse_websockets = False
        self.accepted = 0
        self.refused = 0
        self._thread = threading.Thread(target=self._accept_forever, daemon=True)

    # ---------------------------------------------------------------- addresses

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat"

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> TcpProxy:
        self._running = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._running = False
        self._thread.join(timeout=2)
        self._listener.close()
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- faults

    def cut(self) -> int:
        """Close every open connection now (both sides); returns how many there were."""
        with self._lock:
            pipes, self._pipes = self._pipes, []
        for pipe in pipes:
            pipe.close()
        return len(pipes)

    def refuse(self, *, websockets_only: bool = False) -> None:
        """Reset new connections (only WebSocket upgrades if asked) until `allow()`."""
        self._refuse_websockets = websockets_only
        self._refuse_all = not websockets_only

    def allow(self) -> None:
        self._refuse_all = self._refuse_websockets = False

    @contextlib.contextmanager
    def refusing(self, *, websockets_only: bool = False) -> Iterator[None]:
        self.refuse(websockets_only=websockets_only)
        try:
            yield
        finally:
            self.allow()

    def blackhole(self) -> int:
        """Stall every open connection: open, but nothing gets through any more."""
        with self._lock:
            pipes = [p for p in self._pipes if not p.closed]
        for pipe in pipes:
            pipe.stalled = True
        return len(pipes)

    def open_connections(self) -> int:
        with self._lock:
            return sum(1 for p in self._pipes if not p.closed)

    # ---------------------------------------------------------------- serving

    def _accept_forever(self) -> None:
        while self._running:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self._refuse_all or (self._refuse_websockets and _is_websocket(client)):
            self.refused += 1
            _reset(client)
            return
        try:
            upstream = socket.create_connection(self._upstream, timeout=5)
            upstream.settimeout(None)
        except OSError:
            _reset(client)
            return
        pipe = _Pipe(client, upstream)
        with self._lock:
            self._pipes = [p for p in self._pipes if not p.closed]
            self._pipes.append(pipe)
            self.accepted += 1
        pipe.start()


def _is_websocket(client: socket.socket) -> bool:
    """Whether the request on this connection asks for an upgrade, read without consuming it."""
    deadline = time.monotonic() + 2
    head = b""
    client.settimeout(0.2)
    try:
        while b"\r\n\r\n" not in head and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                head = client.recv(8192, socket.MSG_PEEK)
                if not head:
                    break
            if b"\r\n\r\n" not in head:
                time.sleep(0.01)
    except OSError:
        pass
    finally:
        client.settimeout(None)
    return b"upgrade: websocket" in head.lower()


def _reset(client: socket.socket) -> None:
    with contextlib.suppress(OSError):
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
    with contextlib.suppress(OSError):
        client.close()
