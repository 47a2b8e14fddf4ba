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


class Scene:
    """A watch with a 10 s limit, on a clock the test sets, and one socket (fd 5) whose bytes
    waiting in the kernel (`queued`, by fd) the test says."""

    def __init__(self, queued: dict[int, int]) -> None:
        self.now = 0.0
        self.queued = queued
        self.watch = StallWatch(limit_s=10.0, clock=lambda: self.now)
        self.sock = FakeSocket(5)

    def write(self, at: float, written: int | None = None, waiting: int | None = None) -> None:
        """The socket is written to at `at`: `written` bytes so far, `waiting` of them unacked."""
        if written is not None:
            self.sock.written = written
        if waiting is not None:
            self.queued[self.sock.fd] = waiting
        self.now = at
        self.watch.wrote(self.sock)


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> dict[int, int]:
    """What the kernel would say is waiting, by fd."""
    waiting: dict[int, int] = {}
    monkeypatch.setattr(stall_watch, "unacknowledged_bytes", lambda fd: waiting.get(fd))
    return waiting


@pytest.fixture
def scene(queued: dict[int, int]) -> Scene:
    return Scene(queued)


def test_a_client_that_takes_nothing_is_dropped_at_the_limit(scene: Scene) -> None:
    watch, sock = scene.watch, scene.sock
    scene.write(100.0, written=30_000, waiting=25_000)
    watch.check(101.0)
    watch.check(109.0)
    assert not sock.aborted and watch.watched == 1
    watch.check(110.0)
    assert sock.aborted and watch.dropped == 1 and watch.watched == 0


def test_a_client_that_keeps_taking_is_kept(scene: Scene, queued: dict[int, int]) -> None:
    watch, sock = scene.watch, scene.sock
    scene.write(100.0, written=30_000, waiting=25_000)
    for step in range(1, 30):
        queued[5] -= 500  # slowly, but it reads
        watch.check(100.0 + step)
    assert not sock.aborted
    # Then it stops: the limit counts from its last progress.
    watch.check(138.0)
    assert not sock.aborted
    watch.check(139.0)
    assert sock.aborted


def test_nothing_waiting_leaves_the_watch_until_the_next_write(scene: Scene) -> None:
    watch, sock = scene.watch, scene.sock
    scene.write(100.0, written=300, waiting=0)
    watch.check(101.0)  # written to since the watch began: looked at once more
    watch.check(102.0)
    assert watch.watched == 0 and not sock.aborted
    # Written to again long after: the limit counts from that write, not from the first.
    scene.write(500.0, written=600, waiting=300)
    watch.check(501.0)
    watch.check(509.0)
    assert not sock.aborted
    watch.check(510.5)
    assert sock.aborted


def test_a_write_just_after_a_look_that_found_nothing_waiting_is_still_watched(
    scene: Scene,
) -> None:
    watch, sock = scene.watch, scene.sock
    scene.write(100.0, waiting=0)
    watch.check(101.0)  # nothing waiting; the entry stays (it was written to before the look)
    scene.write(101.5, written=300, waiting=300)  # a write lands: flagged, not lost
    watch.check(102.0)
    assert watch.watched == 1
    watch.check(111.4)  # 10 s from the write, not from the look before it
    assert not sock.aborted
    watch.check(111.5)
    assert sock.aborted


def test_a_gone_or_aborted_socket_just_leaves_the_watch(
    scene: Scene, queued: dict[int, int]
) -> None:
    watch = scene.watch
    gone, aborted = FakeSocket(7), FakeSocket(8)
    aborted.aborted = True
    queued[8] = 100
    scene.now = 100.0
    for sock in (gone, aborted):
        watch.wrote(sock)
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
