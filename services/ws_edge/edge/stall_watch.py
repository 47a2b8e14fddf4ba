"""Drops a socket whose client has stopped reading while frames wait for it (PROTOCOL.md's
*Transport*: 10 s), even when every frame fitted in the kernel's buffers.

A write that blocks past its deadline drops the connection (transport.GuardedSocket), but a
write blocks only once the kernel's send buffer is full, and frames that fitted in it can wait
there for ever, unread, with nothing in the edge waiting on them. So every socket written to is
looked at once a tick: the kernel's count of bytes written and not yet acknowledged by the
client (SIOCOUTQ) against the bytes the edge has written tells how much the client has taken.
A socket with bytes waiting whose client has taken nothing more for `limit_s` is dropped; one
with nothing waiting leaves the watch until its next write.

What the edge holds for such a client is thus bounded by the send buffer (`send_buffer_bytes`)
and one frame per writer, for at most the limit.
"""

from __future__ import annotations

import fcntl
import logging
import struct
import termios
import threading
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

_INT = struct.Struct("i")


class Watched(Protocol):
    aborted: bool
    written: int

    def fileno(self) -> int: ...

    def abort(self) -> None: ...


def unacknowledged_bytes(fd: int) -> int | None:
    """Bytes written to a TCP socket and not yet acknowledged (Linux SIOCOUTQ = TIOCOUTQ);
    None if the socket is gone or the call is not supported."""
    try:
        raw = fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0" * _INT.size)
    except (OSError, ValueError):
        return None
    value: int = _INT.unpack(raw)[0]
    return value


class _Entry:
    __slots__ = ("since", "taken", "wrote")

    def __init__(self, since: float) -> None:
        self.since = since  # when the client last took something (or was first written to)
        self.taken = -1  # the bytes it had taken at the last look (-1: not looked at yet)
        self.wrote = True  # written to since the last look


class StallWatch:
    def __init__(
        self, limit_s: float, tick_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = limit_s
        self._tick = tick_s
        self._clock = clock
        self._pending: dict[Watched, _Entry] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def wrote(self, sock: Watched) -> None:
        """After each write: watch the socket until the kernel has nothing waiting for it."""
        entry = self._pending.get(sock)
        if entry is not None:
            if not entry.wrote and entry.taken < 0:
                entry.since = self._clock()  # nothing waited at the last look: from now
            entry.wrote = True
            return
        with self._lock:
            self._pending.setdefault(sock, _Entry(self._clock()))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="stall-watch")
                self._thread.start()

    @property
    def watched(self) -> int:
        return len(self._pending)

    def _run(self) -> None:
        while True:
            time.sleep(self._tick)
            try:
                self.check(self._clock())
            except Exception:
                log.exception("the stall watch failed")

    def check(self, now: float) -> None:
        with self._lock:
            entries = list(self._pending.items())
        for sock, entry in entries:
            wrote, entry.wrote = entry.wrote, False
            stalled = False
            queued = None if sock.aborted else unacknowledged_bytes(sock.fileno())
            if queued:
                taken = sock.written - queued
                if taken > entry.taken:
                    if entry.taken >= 0:
                        entry.since = now  # the client took something since the last look
                    entry.taken = taken
                stalled = now - entry.since >= self._limit
                if not stalled:
                    continue
            elif queued == 0 and wrote:
                # All taken, but written to again since the look: nothing waited before now.
                entry.since, entry.taken = now, -1
                continue
            with self._lock:
                self._pending.pop(sock, None)
            if stalled:
                self.dropped += 1
                log.info(
                    "client took nothing for %.0f s with %d bytes waiting: dropping it",
                    now - entry.since,
                    queued,
                )
                sock.abort()
