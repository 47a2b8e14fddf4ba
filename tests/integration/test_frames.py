"""Every kind of bad frame gets a typed error, stores nothing, and leaves the socket usable."""

from __future__ import annotations

import json

import pytest
from google.cloud import firestore

from devstack.stack import Stack
from tests.support.ws import RawClient, events

BAD_FRAMES: list[tuple[str | bytes, str, str | None]] = [
    (b"\x00binary", "invalid_message", None),
    ("not json", "invalid_message", None),
    ("[1, 2]", "invalid_message", None),
    ('{"no": "type"}', "invalid_message", None),
    ('{"type": 7}', "invalid_message", None),
    ('{"type": "shout"}', "invalid_message", None),
    ('{"type": "chat", "content": "no id"}', "invalid_message", None),
    ('{"type": "chat", "id": "has space", "content": "x"}', "invalid_message", "has space"),
    ('{"type": "chat", "id": "' + "x" * 65 + '", "content": "x"}', "invalid_message", "x" * 65),
    ('{"type": "chat", "id": "e1", "content": ""}', "invalid_message", "e1"),
    ('{"type": "chat", "id": "e2", "content": 5}', "invalid_message", "e2"),
    ('{"type": "chat", "id": "e3", "content": "x", "extra": 1}', "invalid_message", "e3"),
    ('{"type": "ping"}', "invalid_message", None),
    ('{"type": "ping", "ts": "soon"}', "invalid_message", None),
    ('{"type": "cancel"}', "invalid_message", None),
    ('{"type": "init", "session_id": "short"}', "invalid_message", None),
    ('{"type": "init", "last_seq": -1}', "invalid_message", None),
]


def test_bad_frames_get_typed_errors_and_store_nothing(stack: Stack) -> None:
    with RawClient(stack.ws_url) as client:
        for raw, code, ref in BAD_FRAMES:
            client.send(raw)
            frame = client.recv()
            assert frame["type"] == "error" and frame["code"] == code, (raw, frame)
            assert frame.get("ref") == ref, (raw, frame)
            assert frame["message"]
        # Before init, chat and cancel are refused; ping is answered.
        client.send({"type": "chat", "id": "early", "content": "hi"})
        assert client.recv() == {
            "type": "error",
            "code": "not_initialized",
            "message": "send init first",
            "ref": "early",
        }
        client.send({"type": "cancel", "turn_id": "early"})
        assert client.recv()["code"] == "not_initialized"
        client.send({"type": "ping", "ts": 3.5})
        assert client.recv() == {"type": "pong", "ts": 3.5}
        session = client.init()["session_id"]
        client.send({"type": "init"})
        assert client.recv()["code"] == "invalid_message"
        for raw, code, _ in BAD_FRAMES:
            client.send(raw)
            assert client.recv()["code"] == code
        client.send({"type": "ping", "ts": 4})
        assert client.recv() == {"type": "pong", "ts": 4}
        assert not events(client.received)
    db = firestore.Client(project=stack.config.project)
    root = db.collection("sessions").document(session)
    assert (root.get().to_dict() or {})["last_seq"] == 0
    assert list(root.collection("events").stream()) == []
    assert list(root.collection("turns").stream()) == []


def test_a_frame_over_the_limit_closes_with_1009(stack: Stack) -> None:
    with RawClient(stack.ws_url) as client:
        client.init()
        client.send(json.dumps({"type": "chat", "id": "big", "content": "x" * 70_000}))
        assert client.closed_code() == 1009


def test_a_frame_just_under_the_limit_is_accepted(stack: Stack, uid: str) -> None:
    with RawClient(stack.ws_url) as client:
        client.init()
        frame = json.dumps({"type": "chat", "id": f"n-{uid}", "content": "y" * 60_000})
        assert len(frame) < 64 * 1024
        client.send(frame)
        assert client.recv() == {"type": "ack", "id": f"n-{uid}"}


def test_a_foreign_origin_is_refused_with_403_before_the_upgrade(stack: Stack) -> None:
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as refused:
        RawClient(stack.ws_url, origin="https://evil.example")  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403


def test_the_page_origin_is_accepted(stack: Stack) -> None:
    origin = stack.edge_url  # same host and port as the socket
    with RawClient(stack.ws_url, origin=origin) as client:  # type: ignore[arg-type]
        client.init()


@pytest.mark.parametrize("path", ["/healthz", "/"])
def test_http_routes(stack: Stack, path: str) -> None:
    import urllib.request

    with urllib.request.urlopen(stack.edge_url + path, timeout=5) as resp:
        assert resp.status == 200


def test_the_page_assets_are_revalidated(stack: Stack) -> None:
    import urllib.request

    with urllib.request.urlopen(stack.edge_url + "/static/engine.js", timeout=5) as resp:
        assert resp.headers["Cache-Control"] == "no-cache"
        assert "javascript" in resp.headers["Content-Type"]


def test_edge_shutdown_closes_sockets_with_1012_and_sessions_resume(stack: Stack, uid: str) -> None:
    with RawClient(stack.ws_url) as client:
        session = client.init()["session_id"]
        client.send({"type": "chat", "id": f"s-{uid}", "content": "before"})
        before = client.turn(f"s-{uid}")
        assert stack.edge is not None
        import signal

        stack.edge.signal(signal.SIGTERM)
        assert client.closed_code() == 1012
    stack.edge.stop()
    stack.start_edge()
    with RawClient(stack.ws_url) as client:
        connected = client.init(session_id=session, last_seq=0)
        assert connected["resumed"] and connected["last_seq"] == before[-1]["seq"]
        replay = [client.recv() for _ in range(connected["last_seq"])]
        assert replay == events(before)
