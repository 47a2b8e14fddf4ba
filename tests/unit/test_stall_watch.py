"""The stall watch: a client that takes nothing while bytes wait for it is dropped at the limit;
one that takes something, or has nothing waiting, is not."""

from __future__ import annotations

import socket

import pytest

from edge import stall_watch
from edge.stall_watch import StallWatch, unacknowledged_bytes


class FakeSocket:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.aborted = False
        self.written = 0

    def fileno(self) -> int:
        return self.fd

    def abort(self) -> None:
        self.aborted = True


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> dict[int, int]:
    """What the kernel would say is waiting, by fd."""
    waiting: dict[int, int] = {}
    monkeypatch.setattr(stall_watch, "unacknowledged_bytes", lambda fd: waiting.get(fd))
    return waiting


def watch_at(watch: StallWatch, sock: FakeSocket, now: float, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(stall_watch.time, "monotonic", lambda: now)
    watch.wrote(sock)


def test_a_client_that_takes_nothing_is_dropped_at_the_limit(
    queued: dict[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = StallWatch(limit_s=10.0)
    sock = FakeSocket(5)
    sock.written = 30_000
    queued[5] = 25_000
    watch_at(watch, sock, 100.0, monkeypatch)
    watch.check(101.0)
    watch.check(109.0)
    assert not sock.aborted and watch.watched == 1
    watch.check(110.0)
    assert sock.aborted and watch.dropped == 1 and watch.watched == 0


def test_a_client_that_keeps_taking_is_kept(
    queued: dict[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = StallWatch(limit_s=10.0)
    sock = FakeSocket(5)
    sock.written = 30_000
    queued[5] = 25_000
    watch_at(watch, sock, 100.0, monkeypatch)
    for step in range(1, 30):
        queued[5] -= 500  # slowly, but it reads
        watch.check(100.0 + step)
    assert not sock.aborted
    # Then it stops: the limit counts from its last progress.
    watch.check(138.0)
    assert not sock.aborted
    watch.check(139.0)
    assert sock.aborted


def test_nothing_waiting_leaves_the_watch_until_the_next_write(
    queued: dict[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = StallWatch(limit_s=10.0)
    sock = FakeSocket(5)
    sock.written = 300
    queued[5] = 0
    watch_at(watch, sock, 100.0, monkeypatch)
    watch.check(101.0)  # written to since the watch began: looked at once more
    watch.check(102.0)
    assert watch.watched == 0 and not sock.aborted
    # Written to again long after: the limit counts from that write, not from the first.
    sock.written = 600
    queued[5] = 300
    watch_at(watch, sock, 500.0, monkeypatch)
    watch.check(501.0)
    watch.check(509.0)
    assert not sock.aborted
    watch.check(510.5)
    assert sock.aborted


def test_a_write_just_after_a_look_that_found_nothing_waiting_is_still_watched(
    queued: dict[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = StallWatch(limit_s=10.0)
    sock = FakeSocket(5)
    queued[5] = 0
    watch_at(watch, sock, 100.0, monkeypatch)
    watch.check(101.0)  # nothing waiting; the entry stays (it was written to before the look)
    watch_at(watch, sock, 101.5, monkeypatch)  # a write lands: flagged, not lost
    sock.written, queued[5] = 300, 300
    watch.check(102.0)
    assert watch.watched == 1
    watch.check(111.4)  # 10 s from the write, not from the look before it
    assert not sock.aborted
    watch.check(111.5)
    assert sock.aborted


def test_a_gone_or_aborted_socket_just_leaves_the_watch(
    queued: dict[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = StallWatch(limit_s=10.0)
    gone, aborted = FakeSocket(7), FakeSocket(8)
    aborted.aborted = True
    queued[8] = 100
    for sock in (gone, aborted):
        watch_at(watch, sock, 100.0, monkeypatch)
    watch.check(200.0)
    assert watch.watched == 0 and watch.dropped == 0


def test_the_kernel_counts_what_the_peer_has_not_acknowledged() -> None:
    """SIOCOUTQ on a real TCP socket: zero once the peer's kernel has everything."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    try:
        assert unacknowledged_bytes(server.fileno()) == 0
        server.sendall(b"x" * 1000)
        assert client.recv(1000)
        assert unacknowledged_bytes(-1) is None
    finally:
        for s in (client, server, listener):
            s.close()
