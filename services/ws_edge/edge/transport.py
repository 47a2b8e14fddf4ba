"""The chat's WebSocket transport: flask-sock (simple-websocket, wsproto) plus what the protocol's
time limits need and the library does not do.

flask-sock does the handshake, framing, fragmentation, UTF-8 and close-code validation, and the
size limit (RFC 6455, checked with the Autobahn suite). What this module adds, as a shim around
the socket simple-websocket writes to, and nothing deeper:

- every write has a deadline (`write_timeout_s`): simple-websocket calls `sock.send()` with no
  timeout and no lock, so a client that stops reading would block the writer forever, and two
  greenlets writing at once would interleave frames. Here writes take a lock and must finish in
  time, or the TCP connection is dropped;
- `send()` here is `sendall()`: a partial send would otherwise cut a frame;
- frames that fitted in the kernel's buffers and wait there unread are found by the stall
  watch (stall_watch), which drops the connection as a blocked write would;
- after the server's close frame, the TCP connection is dropped if the client has not answered
  within `close_timeout_s` (simple-websocket waits for the client's close frame forever);
- every read yields to the other greenlets first (see `GuardedSocket.recv`);
- reading can be paused (`pause_reading`): simple-websocket's reader reads the socket as fast
  as frames come and queues every message, with no bound, so a client that floods frames while
  the edge waits to write to it would grow that queue for ever. Paused, its reader waits before
  its next `recv()`, and TCP's window holds the client back.

The handshake is refused before any upgrade when it is not one the edge serves (see
`check_handshake`): a wrong version gets 426, a foreign Origin 403. permessage-deflate is never
negotiated: the offer is removed from the request simple-websocket answers (a zlib context per
socket costs more than our small JSON frames save).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from simple_websocket import ConnectionClosed, Server

from .settings import EdgeSettings
from .stall_watch import StallWatch, unacknowledged_bytes

log = logging.getLogger(__name__)

try:
    import gevent
    from gevent import Timeout as _GeventTimeout
    from gevent.event import Event as _GreenEvent
    from gevent.lock import Semaphore as _GreenLock
    from gevent.socket import socket as _GreenSocket
except ImportError:  # pragma: no cover - the edge always runs under gevent
    gevent = None
    _GeventTimeout = None
    _GreenEvent = _GreenLock = _GreenSocket = None


class HandshakeRefused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def check_handshake(environ: Mapping[str, Any], settings: EdgeSettings) -> None:
    """Refuse, before any upgrade, a request that is not a WebSocket handshake we serve."""
    if environ.get("REQUEST_METHOD") != "GET":
        raise HandshakeRefused(405, "a WebSocket handshake is a GET", {"Allow": "GET"})
    upgrade = environ.get("HTTP_UPGRADE", "")
    tokens = {t.strip().lower() for t in environ.get("HTTP_CONNECTION", "").split(",")}
    if upgrade.lower() != "websocket" or "upgrade" not in tokens:
        raise HandshakeRefused(
            426, "this endpoint speaks WebSocket", {"Upgrade": "websocket", "Connection": "Upgrade"}
        )
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION", "").strip() != "13":
        raise HandshakeRefused(426, "WebSocket version 13 only", {"Sec-WebSocket-Version": "13"})
    if not environ.get("HTTP_SEC_WEBSOCKET_KEY"):
        raise HandshakeRefused(400, "missing Sec-WebSocket-Key")
    if not origin_allowed(environ.get("HTTP_ORIGIN"), environ, settings):
        raise HandshakeRefused(403, "origin not allowed")


def origin_allowed(origin: str | None, environ: Mapping[str, Any], settings: EdgeSettings) -> bool:
    """Same-origin pages and listed origins, by scheme and host (port included).

    A client that sends no Origin is not a browser: its credentials alone judge it.
    """
    if origin is None:
        return True
    candidate = normalize_origin(origin)
    if candidate is None:
        return False
    if "*" in settings.allowed_origins:
        return True
    if candidate in {normalize_origin(o) for o in settings.allowed_origins}:
        return True
    return candidate == own_origin(environ)


def own_origin(environ: Mapping[str, Any]) -> str | None:
    # Behind Cloud Run's front end the request arrives as plain HTTP: the scheme the browser
    # used is in X-Forwarded-Proto.
    scheme = str(environ.get("HTTP_X_FORWARDED_PROTO") or environ.get("wsgi.url_scheme", "http"))
    host = str(environ.get("HTTP_HOST", ""))
    return normalize_origin(f"{scheme.split(',')[0].strip()}://{host}")


def normalize_origin(origin: str) -> str | None:
    """`scheme://host:port`, lower case, default ports made explicit; None if not an origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return None
    port = port or (443 if scheme == "https" else 80)
    return f"{scheme}://{parts.hostname.lower()}:{port}"


# struct linger {l_onoff = 1, l_linger = 0}: close() resets the connection.
_RESET = struct.pack("ii", 1, 0)


class GuardedSocket:
    """The socket simple-websocket reads and writes, with a lock and a deadline on writes.

    Reading is left alone (simple-websocket's own greenlet blocks in recv()) unless paused;
    `abort()` ends it.
    """

    def __init__(
        self, sock: socket.socket, write_timeout_s: float, stalls: StallWatch | None = None
    ) -> None:
        self._sock = sock
        self._write_timeout_s = write_timeout_s
        self._stalls = stalls
        self._green = _is_green(sock)
        # A green socket is written and read from greenlets: gevent's lock and event, as the
        # edge's monkey-patched threading would give, whoever patched or did not.
        self._lock: Any = _GreenLock() if self._green else threading.Lock()
        # Cleared: the next recv() waits (backpressure).
        self._readable: Any = _GreenEvent() if self._green else threading.Event()
        self._readable.set()
        self.aborted = False
        self.written = 0  # bytes handed to the kernel (the stall watch compares its count)

    def hurry(self, write_timeout_s: float) -> None:
        """Give every write from now on at most this long (the drain's close frame)."""
        self._write_timeout_s = min(self._write_timeout_s, write_timeout_s)

    def send(self, data: bytes) -> int:
        if self.aborted:
            raise ConnectionAbortedError("connection dropped")
        try:
            if self._lock.acquire(blocking=False):
                # Nobody else is writing. Nearly every frame fits in the send buffer: one
                # send() that cannot wait, and no timer. The timer, and gevent's sendall
                # (which asks the kernel for SO_SNDBUF on every call), were a tenth of the
                # worker's CPU in the bench's ping bursts.
                try:
                    sent = self._send_nowait(data)
                    if sent < len(data):
                        with _deadline(self._write_timeout_s):
                            self._sock.sendall(memoryview(data)[sent:])
                    self.written += len(data)
                finally:
                    self._lock.release()
            else:
                with _deadline(self._write_timeout_s), self._lock:
                    self._sock.sendall(data)
                    self.written += len(data)
        except TimeoutError:
            log.info("client stopped reading: dropping the connection")
            self.abort()
            raise ConnectionAbortedError("client stopped reading") from None
        if self._stalls is not None:
            self._stalls.wrote(self)
        return len(data)

    def _send_nowait(self, data: bytes) -> int:
        """What the kernel takes of `data` at once; 0 when its buffer is full."""
        try:
            if self._green:
                # gevent's send() with a zero timeout raises instead of waiting to write.
                sent: int = self._sock.send(data, 0, 0.0)  # type: ignore[call-arg]
            else:
                sent = self._sock.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return 0
        return sent

    def recv(self, size: int) -> bytes:
        if gevent is not None:
            # simple-websocket's reader calls recv() in a loop, and gevent's recv() does not
            # yield while data is waiting: a client that floods frames would keep this greenlet
            # on the CPU for good, and no other socket, timer or write deadline would run.
            gevent.sleep(0)
        self._readable.wait()
        return self._sock.recv(size)

    def pause_reading(self) -> None:
        self._readable.clear()

    def resume_reading(self) -> None:
        self._readable.set()

    def abort(self) -> None:
        """Drop the TCP connection now (no more frames can get through).

        With bytes still waiting for the client, a reset (SO_LINGER 0): a FIN would queue
        behind them, never reach a client that does not read, and leave the kernel holding
        them, orphaned, for minutes. With none, a FIN, so the client reads all it was sent.
        """
        self.aborted = True
        self._readable.set()  # a paused reader wakes up to find the socket gone
        with contextlib.suppress(OSError, ValueError):
            if unacknowledged_bytes(self._sock.fileno()):
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    def __getattr__(self, name: str) -> Any:
        # selectors (ping_interval) and the like reach the real socket.
        return getattr(self._sock, name)


def _is_green(sock: socket.socket) -> bool:
    return _GreenSocket is not None and isinstance(sock, _GreenSocket)


class _DeadlineExpired(TimeoutError):
    pass


@contextlib.contextmanager
def _deadline(seconds: float) -> Any:
    """Raise TimeoutError in this greenlet if the block takes longer than `seconds`."""
    if _GeventTimeout is None:
        yield
        return
    timer = _GeventTimeout(seconds, _DeadlineExpired())
    timer.start()
    try:
        yield
    finally:
        timer.close()


class ChatSocket:
    """One accepted WebSocket: simple-websocket's Server and the guard on its socket."""

    def __init__(self, server: Server, guard: GuardedSocket, close_timeout_s: float) -> None:
        self._server = server
        self._guard = guard
        self._close_timeout_s = close_timeout_s
        self._close_lock = threading.Lock()
        self.closing = False

    @property
    def connected(self) -> bool:
        return bool(self._server.connected) and not self._guard.aborted

    def receive(self, timeout: float | None) -> str | bytes | None:
        """The next message; None on timeout. ConnectionClosed once the socket is closed."""
        if not self.connected:
            raise ConnectionClosed(self._server.close_reason, self._server.close_message)
        message: str | bytes | None = self._server.receive(timeout=timeout)
        if message is None and not self.connected:
            raise ConnectionClosed(self._server.close_reason, self._server.close_message)
        return message

    def has_waiting(self) -> bool:
        """Whether a message has come that receive() would return at once.

        simple-websocket queues them in its Server's `input_buffer` (a plain attribute, read
        here, never written); were it gone, the answer is yes, which costs a yield, no frame.
        """
        return bool(getattr(self._server, "input_buffer", True))

    def send(self, text: str) -> None:
        self.send_raw(text)

    def pause_reading(self) -> None:
        """Read nothing more from the client until `resume_reading()` (see GuardedSocket)."""
        self._guard.pause_reading()

    def resume_reading(self) -> None:
        self._guard.resume_reading()

    def send_raw(self, data: str | bytes) -> None:
        """A text message for `str`, a binary one for `bytes`."""
        if self.closing:
            raise ConnectionClosed()
        try:
            self._server.send(data)
        except OSError as exc:
            raise ConnectionClosed() from exc

    def close(self, code: int, reason: str = "") -> None:
        """Send our close frame (once); drop TCP if the client does not answer in time."""
        with self._close_lock:
            if self.closing:
                return
            self.closing = True
        if self._server.connected and not self._guard.aborted:
            with contextlib.suppress(ConnectionClosed, OSError, RuntimeError):
                # wsproto limits the reason to what fits a control frame (123 bytes).
                self._server.close(code, _truncate_utf8(reason, 123))
        self._spawn_later(self._close_timeout_s, self._guard.abort)

    def abort(self) -> None:
        self.closing = True
        self._guard.abort()

    def hurry(self, write_timeout_s: float) -> None:
        """Bound every write from now on by `write_timeout_s` (GuardedSocket.hurry)."""
        self._guard.hurry(write_timeout_s)

    def wait_closed(self) -> None:
        """Until simple-websocket's reader has seen the end of the connection.

        Returning sooner would let gunicorn close the socket with the client's frames still
        unread, and the kernel would answer them with a reset that can destroy our close frame
        before the client reads it.
        """
        if not self.closing and self.connected:
            self.close(1000, "")
        thread = getattr(self._server, "thread", None)
        if thread is not None:
            thread.join(self._close_timeout_s + 1.0)
            if thread.is_alive():
                self._guard.abort()
                thread.join(1.0)

    def _spawn_later(self, seconds: float, fn: Callable[[], None]) -> None:
        if gevent is not None:
            gevent.spawn_later(seconds, fn)
        else:
            timer = threading.Timer(seconds, fn)
            timer.daemon = True
            timer.start()

    @property
    def close_code(self) -> int | None:
        reason = self._server.close_reason
        return int(reason) if reason is not None else None


def prepare_environ(
    environ: dict[str, Any], settings: EdgeSettings, stalls: StallWatch | None = None
) -> None:
    """Before flask-sock answers the handshake: guard the socket, bound its send buffer, drop
    the deflate offer."""
    environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    raw = environ.get("gunicorn.socket")
    if raw is not None and not isinstance(raw, GuardedSocket):
        if settings.send_buffer_bytes:
            # Linux lets the buffer grow to tcp_wmem's maximum (4 MB by default) for a client
            # that does not read; a chat's frames need far less.
            with contextlib.suppress(OSError):
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.send_buffer_bytes)
        environ["gunicorn.socket"] = GuardedSocket(raw, settings.write_timeout_s, stalls)


def wrap(server: Server, settings: EdgeSettings) -> ChatSocket:
    """The socket flask-sock accepted, with the guard prepare_environ put under it."""
    guard = server.sock
    if not isinstance(guard, GuardedSocket):  # pragma: no cover - prepare_environ always ran
        raise RuntimeError("the chat socket is not guarded")
    return ChatSocket(server, guard, settings.close_timeout_s)


def server_options(settings: EdgeSettings) -> dict[str, Any]:
    """flask-sock's SOCK_SERVER_OPTIONS for every route of the edge.

    No `ping_interval`: the protocol's idle limit is enforced on the client's own frames (its
    heartbeat sends one every 30 s), and a protocol ping would not tell a live client from a
    frozen tab.
    """
    return {
        "max_message_size": settings.max_frame_bytes,
        "receive_bytes": 4096,
        "ping_interval": None,
    }


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode()[:limit]
    return data.decode(errors="ignore")
