"""The transport's promises (PROTOCOL.md *Transport*, RFC 6455), probed with raw sockets against
the real gunicorn edge: handshake refusals, every time limit, and drain with 1012."""

from __future__ import annotations

import base64
import json
import os
import selectors
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.stack import Stack
from tests.support.edges import extra_edge
from tests.support.identity import sign_up_guest

# Short limits, so each one can be waited out; the defaults are the protocol's.
LIMITS = {
    "DEPLOYCHAT_INIT_TIMEOUT_S": "2",
    "DEPLOYCHAT_IDLE_TIMEOUT_S": "3",
    "DEPLOYCHAT_WRITE_TIMEOUT_S": "2",
    "DEPLOYCHAT_CLOSE_TIMEOUT_S": "2",
}


@pytest.fixture(scope="module")
def short_stack(stack: Stack) -> Iterator[Stack]:
    """A second edge, with short limits, beside the session's stack (same emulators)."""
    with extra_edge(stack, {**LIMITS, "DEPLOYCHAT_ECHO_ROUTE": "true"}) as edge:
        yield edge


def handshake(
    port: int,
    headers: dict[str, str] | None = None,
    path: str = "/ws/chat",
    receive_buffer: int | None = None,
) -> tuple[socket.socket, int, dict[str, str]]:
    """A raw RFC 6455 opening handshake: (socket, HTTP status, response headers)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:  # before connecting, so the window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    fields = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        **(headers or {}),
    }
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    sock.sendall((request + "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
    status = int(lines[0].split()[1])
    answer = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return sock, status, answer


def send_frame(sock: socket.socket, payload: bytes, opcode: int = 0x1) -> None:
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(header + mask + masked)


def read_frame(sock: socket.socket) -> tuple[int, bytes] | None:
    """(opcode, payload) of the next server frame; None when TCP closed."""

    def exactly(n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    head = exactly(2)
    if head is None:
        return None
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        ext = exactly(2)
        assert ext is not None
        length = struct.unpack("!H", ext)[0]
    elif length == 127:
        ext = exactly(8)
        assert ext is not None
        length = struct.unpack("!Q", ext)[0]
    payload = exactly(length)
    assert payload is not None
    return opcode, payload


def close_code(sock: socket.socket) -> tuple[int | None, float]:
    """The code of the server's close frame (skipping data frames), and when it came."""
    while True:
        frame = read_frame(sock)
        if frame is None:
            return None, time.monotonic()
        opcode, payload = frame
        if opcode == 0x8:
            return (struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None), (
                time.monotonic()
            )


def tcp_closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server ends TCP within `seconds` in all, whatever it still sends meanwhile."""
    deadline = time.monotonic() + seconds
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(4096):
                return True
    except TimeoutError:
        return False
    except OSError:
        return True
    return False


def sign_in(sock: socket.socket) -> None:
    """`init` as a new guest, then read up to `connected`."""
    send_frame(sock, json.dumps({"type": "init", "token": sign_up_guest().id_token}).encode())
    while (frame := read_frame(sock)) is not None and b'"connected"' not in frame[1]:
        pass


# Refused with an error that echoes the id as its `ref`: about 300 bytes of answer each.
ANSWERED = json.dumps({"type": "x", "id": "r" * 240}).encode()


def send_answered_frames(sock: socket.socket, count: int) -> None:
    for _ in range(count):
        send_frame(sock, ANSWERED)


def port(stack: Stack) -> int:
    return stack.config.edge_port


def test_a_wrong_version_gets_426_naming_13(stack: Stack) -> None:
    sock, status, headers = handshake(port(stack), {"Sec-WebSocket-Version": "8"})
    sock.close()
    assert status == 426 and headers["sec-websocket-version"] == "13"


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "http://127.0.0.1.evil.example", "https://127.0.0.1:{port}", "null"],
)
def test_a_foreign_origin_gets_403_before_any_upgrade(stack: Stack, origin: str) -> None:
    sock, status, _ = handshake(port(stack), {"Origin": origin.format(port=port(stack))})
    sock.close()
    assert status == 403


def test_the_same_origin_and_no_origin_are_upgraded(stack: Stack) -> None:
    for extra in ({"Origin": f"http://127.0.0.1:{port(stack)}"}, {}):
        sock, status, _ = handshake(port(stack), extra)
        sock.close()
        assert status == 101


def test_permessage_deflate_is_never_negotiated(stack: Stack) -> None:
    sock, status, headers = handshake(
        port(stack), {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}
    )
    sock.close()
    assert status == 101 and "sec-websocket-extensions" not in headers


def test_no_init_in_time_closes_1008(short_stack: Stack) -> None:
    sock, status, _ = handshake(port(short_stack))
    assert status == 101
    started = time.monotonic()
    code, at = close_code(sock)
    assert code == 1008 and 1.5 <= at - started < 6
    sock.close()


def test_no_frame_for_the_idle_limit_closes_1001(short_stack: Stack) -> None:
    sock, _, _ = handshake(port(short_stack))
    token = sign_up_guest().id_token
    started = time.monotonic()  # the idle clock runs from the last frame the server got
    send_frame(sock, json.dumps({"type": "init", "token": token}).encode())
    _, payload = read_frame(sock) or (0, b"")
    assert json.loads(payload)["type"] == "connected"
    code, at = close_code(sock)
    assert code == 1001 and 2.9 <= at - started < 8
    sock.close()


def test_tcp_is_dropped_when_the_client_never_answers_our_close(short_stack: Stack) -> None:
    sock, _, _ = handshake(port(short_stack))
    code, at = close_code(sock)  # the init limit closes it; we never answer
    assert code == 1008
    assert tcp_closed_within(sock, 6)
    assert time.monotonic() - at < 4.5
    sock.close()


def test_a_client_that_stops_reading_is_dropped(short_stack: Stack) -> None:
    sock, _, _ = handshake(port(short_stack), path="/ws/echo")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    big = b"x" * 60_000
    started = time.monotonic()
    dropped = False
    # The echo sends back all we send; we read nothing, so the server's writes stall.
    try:
        for _ in range(400):
            send_frame(sock, big)
            if time.monotonic() - started > 30:
                break
    except OSError:
        dropped = True
    if not dropped:
        dropped = tcp_closed_within(sock, 10)
    assert dropped and time.monotonic() - started < 30
    sock.close()


def test_a_client_that_floods_frames_and_never_reads_is_dropped_at_the_write_limit(
    short_stack: Stack,
) -> None:
    # Signed in, then frames each answered with an error echoing its id (~300 bytes) that this
    # client never reads. Once its answers back up, the edge stops reading it (inbox_frames) and
    # drops it at the write limit (2 s here), however fast it keeps sending.
    sock, _, _ = handshake(port(short_stack))
    sign_in(sock)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    payload = ANSWERED
    one = bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(payload)) + bytes(4) + payload
    flood = one * 1000
    sock.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_WRITE)
    sent, dropped_at = 0, None
    started = time.monotonic()
    while time.monotonic() - started < 20:
        try:  # resume where the last partial send stopped, so no frame is cut
            sent += sock.send(flood[sent % len(flood) :])
        except BlockingIOError:
            selector.select(timeout=0.2)
        except OSError:
            dropped_at = time.monotonic() - started
            break
    selector.close()
    sock.close()
    assert dropped_at is not None, f"still connected after 20 s and {sent} bytes"
    assert dropped_at < 2 + 2 + 2, f"dropped after {dropped_at:.1f} s"


def tcp_state(sock: socket.socket) -> int:
    """The kernel's state of our end (linux/tcp.h): 1 established, 7 closed, 8 close-wait."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


def test_a_client_that_stops_reading_is_dropped_even_when_its_frames_fit_in_the_buffers(
    short_stack: Stack,
) -> None:
    """No write of the edge ever blocks here: 100 answers of ~300 bytes fit in the kernel's
    buffers. They wait there unread all the same, and the client is dropped at the write limit
    (2 s here) all the same."""
    sock, _, _ = handshake(port(short_stack), receive_buffer=4096)
    sign_in(sock)
    send_answered_frames(sock, 100)
    started = time.monotonic()
    while tcp_state(sock) == 1 and time.monotonic() - started < 15:
        time.sleep(0.1)  # read nothing
    dropped_after = time.monotonic() - started
    assert tcp_state(sock) != 1, "still connected after 15 s"
    # The limit, plus the watch's tick (1 s), plus scheduling.
    assert 1.5 < dropped_after < 2 + 1 + 2, f"dropped after {dropped_after:.1f} s"
    sock.close()


def test_a_client_that_reads_late_but_within_the_limit_keeps_its_socket(
    short_stack: Stack,
) -> None:
    sock, _, _ = handshake(port(short_stack), receive_buffer=4096)
    sign_in(sock)
    send_answered_frames(sock, 100)
    time.sleep(1.0)  # half the limit, reading nothing
    answers = 0
    while answers < 100:
        frame = read_frame(sock)
        assert frame is not None, f"dropped after {answers} answers"
        answers += 1 if b'"error"' in frame[1] else 0
    send_frame(sock, json.dumps({"type": "ping", "ts": 1}).encode())
    while (frame := read_frame(sock)) is not None and b'"pong"' not in frame[1]:
        pass
    assert frame is not None and tcp_state(sock) == 1
    sock.close()


def test_the_init_limit_holds_while_the_client_keeps_sending(short_stack: Stack) -> None:
    # A client that pings and never sends init is closed at the init limit all the same.
    sock, _, _ = handshake(port(short_stack))
    started = time.monotonic()
    code = None
    sock.settimeout(5)
    while time.monotonic() - started < 10:
        send_frame(sock, b'{"type": "ping", "ts": 1}')
        frame = read_frame(sock)  # its pong, until the close frame
        time.sleep(0.05)
        if frame is None or frame[0] == 0x8:
            code = struct.unpack("!H", frame[1][:2])[0] if frame else None
            break
    at = time.monotonic() - started
    sock.close()
    assert code == 1008 and 1.5 <= at < 6, (code, at)


def test_a_closing_handshake_answered_by_the_client_is_clean(short_stack: Stack) -> None:
    sock, _, _ = handshake(port(short_stack), path="/ws/echo")
    send_frame(sock, struct.pack("!H", 1000) + b"bye", opcode=0x8)
    frame = read_frame(sock)
    assert frame is not None and frame[0] == 0x8 and struct.unpack("!H", frame[1][:2])[0] == 1000
    assert tcp_closed_within(sock, 3)
    sock.close()


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 1000 + "]" * 1000,
        '{"type": "chat", "id": "a\\ud800", "content": "x"}',
        '{"type": "ping", "ts": NaN}',
        '{"type": "ping", "ts": Infinity}',
        '{"type": "ping", "ts": 1e400}',
        "42",
        '"init"',
        "null",
    ],
)
def test_bad_input_gets_invalid_message_and_the_socket_stays_open(stack: Stack, frame: str) -> None:
    sock, _, _ = handshake(port(stack))
    send_frame(sock, frame.encode())
    answer = read_frame(sock)
    assert answer is not None
    error = json.loads(answer[1])
    assert error["type"] == "error" and error["code"] == "invalid_message", error
    send_frame(sock, b'{"type": "ping", "ts": 5}')
    pong = read_frame(sock)
    assert pong is not None and json.loads(pong[1]) == {"type": "pong", "ts": 5}
    sock.close()


def test_a_reserved_session_id_is_just_not_yours(stack: Stack) -> None:
    sock, _, _ = handshake(port(stack))
    token = sign_up_guest().id_token
    send_frame(
        sock, json.dumps({"type": "init", "session_id": "__reserved__", "token": token}).encode()
    )
    answer = read_frame(sock)
    assert answer is not None and json.loads(answer[1])["code"] == "unauthorized"
    assert close_code(sock)[0] == 1008
    sock.close()


def test_drain_closes_every_socket_with_1012_at_once_even_past_clients_that_dont_read(
    stack: Stack,
) -> None:
    import signal

    env = {"DEPLOYCHAT_ECHO_ROUTE": "true", "DEPLOYCHAT_INIT_TIMEOUT_S": "120"}
    with extra_edge(stack, env) as edge:
        readers = [handshake(port(edge))[0] for _ in range(200)]
        stuck = []
        for _ in range(10):
            sock = handshake(port(edge), path="/ws/echo")[0]
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(0.5)
            try:  # echoed back and never read: the server's writes to it stall
                for _ in range(40):
                    send_frame(sock, b"z" * 60_000)
            except OSError:
                pass
            stuck.append(sock)
        assert edge.edge is not None
        started = time.monotonic()
        edge.edge.signal(signal.SIGTERM)
        selector = selectors.DefaultSelector()
        for sock in readers:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, bytearray())
        codes: list[int | None] = []
        deadline = started + 10
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                sock, buffer = key.fileobj, key.data
                assert isinstance(sock, socket.socket)
                try:
                    chunk = sock.recv(4096)
                except BlockingIOError:
                    continue
                buffer.extend(chunk)
                if len(buffer) >= 4 or not chunk:
                    codes.append(
                        struct.unpack("!H", bytes(buffer[2:4]))[0]
                        if buffer[:1] == b"\x88" and len(buffer) >= 4
                        else None
                    )
                    selector.unregister(sock)
        elapsed = time.monotonic() - started
        for sock in readers + stuck:
            sock.close()
    assert codes == [1012] * len(readers)
    assert elapsed < 2.0, f"drain took {elapsed:.2f}s"


def test_sockets_end_at_their_age_limit_with_1012_and_clients_lose_nothing(stack: Stack) -> None:
    import threading
    import uuid

    from websockets.exceptions import ConnectionClosed

    from tests.support.ws import RawClient, assert_contiguous, events, reply_text

    env = {"DEPLOYCHAT_MAX_SOCKET_AGE_S": "4", "DEPLOYCHAT_SOCKET_AGE_JITTER": "0.25"}
    results: dict[int, tuple[list[dict[str, Any]], list[str], int]] = {}
    failures: list[BaseException] = []

    def session(n: int, url: str) -> None:
        try:
            # A user of its own per thread: current_user() is not thread-safe, and one user's
            # three sessions would serialise on that user's rate windows, which the Firestore
            # emulator resolves with 2 s lock timeouts, more than the 4 s age limit allows.
            token = sign_up_guest().id_token
            turns = [f"age{n}-{k}-{uuid.uuid4().hex[:6]}" for k in range(3)]
            seen: list[dict[str, Any]] = []
            cut = 0
            last_seq, session_id = 0, None
            pending = list(turns)
            answered: set[str] = set()
            deadline = time.monotonic() + 240
            # Until every turn is answered and the socket has met its age limit at least once
            # (a quick machine answers them all within one socket's life).
            while len(answered) < len(turns) or not cut:
                assert time.monotonic() < deadline, f"session {n} stuck: {answered}"
                try:
                    with RawClient(url, token=token) as client:
                        fields = (
                            {"session_id": session_id, "last_seq": last_seq} if session_id else {}
                        )
                        session_id = client.init(**fields)["session_id"]
                        for turn in pending:
                            client.send({"type": "chat", "id": turn, "content": f"hi {turn}"})
                        while len(answered) < len(turns) or not cut:
                            frame = client.recv(timeout=60)
                            if "seq" in frame:
                                assert frame["seq"] == last_seq + 1, (frame, last_seq)
                                last_seq = int(frame["seq"])
                                seen.append(frame)
                                if frame.get("role") == "assistant" and frame.get("final"):
                                    answered.add(str(frame["turn_id"]))
                            elif frame["type"] == "ack":
                                pending = [t for t in pending if t != frame["id"]]
                except ConnectionClosed as exc:  # the age limit cut it: reconnect at once
                    assert exc.rcvd is not None and exc.rcvd.code == 1012, exc
                    cut += 1
            results[n] = (seen, turns, cut)
        except BaseException as exc:  # reported below
            failures.append(exc)

    with extra_edge(stack, env) as edge:
        threads = [threading.Thread(target=session, args=(n, edge.ws_url)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(200)
    assert not failures, failures
    assert sum(cut for _, _, cut in results.values()) >= 1, "no socket reached its age"
    for seen, turns, _ in results.values():
        assert_contiguous(seen)
        for turn in turns:
            reply_text(events(seen), turn)  # exactly one final answer each
