"""GuardedSocket's writes: whole frames, in order, with no timer when the kernel takes them at
once, and the write limit when it does not (on gevent's sockets, as the edge runs)."""

from __future__ import annotations

import inspect
import types

import gevent
import gevent.socket
import pytest
from simple_websocket.ws import Base

from edge.transport import ChatSocket, GuardedSocket

LIMIT_S = 0.5


def read_all(sock: gevent.socket.socket, size: int) -> bytes:
    got = bytearray()
    while len(got) < size:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return bytes(got)


@pytest.fixture
def pair() -> tuple[gevent.socket.socket, gevent.socket.socket]:
    ours, theirs = gevent.socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_a_frame_the_kernel_takes_at_once_goes_whole(
    pair: tuple[gevent.socket.socket, gevent.socket.socket],
) -> None:
    ours, theirs = pair
    guard = GuardedSocket(ours, LIMIT_S)
    assert guard.send(b"x" * 300) == 300
    assert guard.written == 300
    assert read_all(theirs, 300) == b"x" * 300


def test_a_frame_larger_than_the_buffers_goes_whole_to_a_slow_reader(
    pair: tuple[gevent.socket.socket, gevent.socket.socket],
) -> None:
    ours, theirs = pair
    guard = GuardedSocket(ours, 10.0)
    big = bytes(range(256)) * 8192  # 2 MiB: many times what the buffers hold
    small = b"second frame"
    reader = gevent.spawn(read_all, theirs, len(big) + len(small))
    writers = [gevent.spawn(guard.send, big), gevent.spawn(guard.send, small)]
    gevent.joinall(writers, timeout=10, raise_error=True)
    # The second writer waited for the first: no byte of its frame inside the first's.
    assert reader.get(timeout=10) == big + small
    assert guard.written == len(big) + len(small)


def test_a_client_that_reads_nothing_is_dropped_at_the_write_limit(
    pair: tuple[gevent.socket.socket, gevent.socket.socket],
) -> None:
    ours, _theirs = pair
    guard = GuardedSocket(ours, LIMIT_S)
    with gevent.Timeout(LIMIT_S * 10), pytest.raises(ConnectionAbortedError):
        while True:  # fill both buffers; the write that cannot finish in time drops it
            guard.send(b"y" * 65536)
    assert guard.aborted
    with pytest.raises(ConnectionAbortedError):
        guard.send(b"more")


def test_a_waiting_message_is_seen_without_taking_it(
    pair: tuple[gevent.socket.socket, gevent.socket.socket],
) -> None:
    guard = GuardedSocket(pair[0], LIMIT_S)
    server = types.SimpleNamespace(input_buffer=[], connected=True)
    ws = ChatSocket(server, guard, 1.0)  # type: ignore[arg-type]
    assert not ws.has_waiting()
    server.input_buffer.append("frame")
    assert ws.has_waiting()
    assert server.input_buffer == ["frame"]
    # A simple-websocket without the attribute: "yes", which costs a yield and loses nothing.
    assert ChatSocket(object(), guard, 1.0).has_waiting()  # type: ignore[arg-type]


def test_simple_websocket_still_queues_messages_in_input_buffer() -> None:
    # has_waiting() reads it; were it renamed, every frame would cost a yield again.
    assert "self.input_buffer" in inspect.getsource(Base.__init__)
    assert "self.input_buffer.pop(0)" in inspect.getsource(Base.receive)
