"""PROTOCOL.md *Identity* through the real path: Firebase Auth emulator users, a real gunicorn
edge, Firestore. Who may open which session, forged tokens, limits per user, the HTTP API."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from google.cloud import firestore

from devstack.stack import Stack
from tests.support.edges import extra_edge
from tests.support.identity import sign_up_email, sign_up_guest
from tests.support.ws import RawClient, events


def get_json(url: str, token: str | None = None) -> tuple[int, Any, dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null"), dict(exc.headers)


def refused(client: RawClient) -> dict[str, Any]:
    """The error an init got, after checking the socket then closed with 1008."""
    error = client.recv()
    assert error["type"] == "error", error
    assert client.closed_code() == 1008
    assert not events(client.received)
    return error


def test_init_without_a_token_is_unauthorized(stack: Stack) -> None:
    with RawClient(stack.ws_url, token="") as client:
        client.send({"type": "init"})
        assert refused(client)["code"] == "unauthorized"


def test_a_garbage_token_is_unauthorized(stack: Stack) -> None:
    with RawClient(stack.ws_url, token="not.a.token") as client:
        client.send({"type": "init", "token": "not.a.token"})
        assert refused(client)["code"] == "unauthorized"


def test_a_token_for_another_project_is_unauthorized(stack: Stack) -> None:
    token = sign_up_guest().id_token
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["aud"] = "someone-elses-project"
    claims["iss"] = "https://securetoken.google.com/someone-elses-project"
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with RawClient(stack.ws_url, token="") as client:
        client.send({"type": "init", "token": f"{head}.{forged_body}.{sig}"})
        assert refused(client)["code"] == "unauthorized"


def test_unsigned_tokens_are_refused_by_an_edge_not_set_up_for_the_emulator(stack: Stack) -> None:
    # The emulator's tokens are unsigned (alg "none"): trusted only where the edge is told so.
    with extra_edge(stack, {"FIREBASE_AUTH_EMULATOR_HOST": ""}) as edge:
        token = sign_up_guest().id_token
        with RawClient(edge.ws_url, token=token) as client:
            client.send({"type": "init", "token": token})
            assert refused(client)["code"] == "unauthorized"
        status, _, _ = get_json(f"{edge.edge_url}/api/sessions", token)
        assert status == 401
        status, config, _ = get_json(f"{edge.edge_url}/api/config")
        assert config["auth"]["mode"] == "firebase" and config["auth"]["emulator_url"] is None


def test_a_foreign_session_is_refused_without_one_event_leaked(stack: Stack, uid: str) -> None:
    owner, intruder = sign_up_guest(), sign_up_guest()
    with RawClient(stack.ws_url, token=owner.id_token) as client:
        session = client.init()["session_id"]
        client.send({"type": "chat", "id": f"secret-{uid}", "content": "my key is hunter2"})
        client.turn(f"secret-{uid}")
    answers = []
    for session_id in (session, f"never-made-{uid}"):
        with RawClient(stack.ws_url, token=intruder.id_token) as client:
            client.send(
                {
                    "type": "init",
                    "session_id": session_id,
                    "last_seq": 0,
                    "token": intruder.id_token,
                }
            )
            error = refused(client)
            assert "hunter2" not in json.dumps(client.received)
            answers.append((error["code"], error["message"]))
    # Someone else's session and one that does not exist get the very same answer.
    assert answers[0] == answers[1] and answers[0][0] == "unauthorized"
    # Nor can the intruder post into it: its log holds only the owner's turn.
    db = firestore.Client(project=stack.config.project)
    turns = list(db.collection("sessions").document(session).collection("turns").stream())
    assert [t.id for t in turns] == [f"t-secret-{uid}"]


def test_new_sessions_get_server_made_ids_and_belong_to_their_creator(stack: Stack) -> None:
    user = sign_up_email()
    with RawClient(stack.ws_url, token=user.id_token) as client:
        connected = client.init()
    assert connected["resumed"] is False and len(connected["session_id"]) >= 16
    db = firestore.Client(project=stack.config.project)
    doc = db.collection("sessions").document(connected["session_id"]).get().to_dict() or {}
    assert doc["owner_uid"] == user.uid and doc["owner_email"] == user.email


def test_api_sessions_lists_the_callers_own_newest_first(stack: Stack, uid: str) -> None:
    me, other = sign_up_guest(), sign_up_guest()
    mine = []
    for n in range(2):
        with RawClient(stack.ws_url, token=me.id_token) as client:
            mine.append(client.init()["session_id"])
            client.send({"type": "chat", "id": f"t{n}-{uid}", "content": f"title {n} " + "x" * 200})
            client.turn(f"t{n}-{uid}")
    with RawClient(stack.ws_url, token=other.id_token) as client:
        client.init()
    status, listed, headers = get_json(f"{stack.edge_url}/api/sessions", me.id_token)
    assert status == 200 and headers.get("Cache-Control") == "no-store"
    assert [s["session_id"] for s in listed] == list(reversed(mine))
    first = listed[-1]
    assert first["title"].startswith("title 0") and len(first["title"]) <= 80
    assert set(first) == {"session_id", "title", "created_at", "updated_at", "last_seq"}
    assert first["last_seq"] > 0
    assert get_json(f"{stack.edge_url}/api/sessions")[0] == 401
    assert get_json(f"{stack.edge_url}/api/sessions", "garbage")[0] == 401


def test_api_config_tells_clients_how_to_sign_in(stack: Stack) -> None:
    status, config, _ = get_json(f"{stack.edge_url}/api/config")
    assert status == 200
    auth = config["auth"]
    assert auth["mode"] == "firebase" and auth["project_id"] == stack.config.project
    assert stack.auth is not None and auth["emulator_url"] == f"http://{stack.auth.host}"
    assert set(auth) == {"mode", "api_key", "auth_domain", "project_id", "emulator_url"}
    assert config["agent"]["mode"] in ("offline", "model")


def test_the_page_carries_security_headers(stack: Stack) -> None:
    with urllib.request.urlopen(stack.edge_url + "/", timeout=10) as response:
        headers = response.headers
    csp = headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"].split()[0] == "'self'"
    assert "'unsafe-inline'" not in directives["script-src"]
    assert directives["frame-ancestors"] == "'none'"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"]


# ------------------------------------------------------------------ limits per user

LIMITS = {
    "DEPLOYCHAT_TURNS_PER_MINUTE": "3",
    "DEPLOYCHAT_CANCELS_PER_MINUTE": "2",
    "DEPLOYCHAT_SESSIONS_PER_HOUR": "4",
    "DEPLOYCHAT_CONNECTIONS_PER_USER": "3",
}


@pytest.fixture(scope="module")
def limited(stack: Stack) -> Iterator[Stack]:
    with extra_edge(stack, LIMITS) as edge:
        yield edge


def wait_minute_boundary(margin_s: float = 20.0) -> None:
    # Windows are fixed minutes: start well inside one, so the test's frames share it.
    while 60 - time.time() % 60 < margin_s:
        time.sleep(0.5)


def test_turn_limits_hold_across_three_sockets_of_one_user(limited: Stack, uid: str) -> None:
    user = sign_up_guest()
    wait_minute_boundary()
    acks, limited_errors = [], []
    sessions = []
    for n in range(3):
        with RawClient(limited.ws_url, token=user.id_token) as client:
            sessions.append(client.init()["session_id"])
            for k in range(2):
                client.send({"type": "chat", "id": f"c{n}{k}-{uid}", "content": "hello"})
                frame = client.until(lambda f: f["type"] in ("ack", "error") and "seq" not in f)[-1]
                (acks if frame["type"] == "ack" else limited_errors).append(frame)
    assert len(acks) == 3 and len(limited_errors) == 3
    assert all(e["code"] == "rate_limited" and e["retry_after_s"] > 0 for e in limited_errors)
    # A resend of an acked id is not a new turn: acked again, not counted, not refused.
    with RawClient(limited.ws_url, token=user.id_token) as client:
        client.init(session_id=sessions[0])
        client.send({"type": "chat", "id": f"c00-{uid}", "content": "hello"})
        assert (
            client.until(lambda f: f["type"] in ("ack", "error") and "seq" not in f)[-1]["type"]
            == "ack"
        )
    # Nothing was stored for the refused frames.
    db = firestore.Client(project=limited.config.project)
    stored = [
        t.id
        for s in sessions
        for t in db.collection("sessions").document(s).collection("turns").stream()
    ]
    assert sorted(stored) == sorted(f"t-{a['id']}" for a in acks)


def test_cancels_of_unknown_turns_write_nothing(limited: Stack, uid: str) -> None:
    user = sign_up_guest()
    with RawClient(limited.ws_url, token=user.id_token) as client:
        session = client.init()["session_id"]
        for n in range(20):
            client.send({"type": "cancel", "turn_id": f"nothing-{n}-{uid}"})
        client.send({"type": "ping", "ts": 1})
        assert client.until(lambda f: f["type"] == "pong")[-1] == {"type": "pong", "ts": 1}
    db = firestore.Client(project=limited.config.project)
    assert list(db.collection("sessions").document(session).collection("turns").stream()) == []


def test_new_sessions_per_hour_and_open_sockets_are_limited(limited: Stack) -> None:
    user = sign_up_guest()
    made = 0
    answer: dict[str, Any] = {}
    for _ in range(6):
        with RawClient(limited.ws_url, token=user.id_token) as client:
            client.send({"type": "init", "token": user.id_token})
            answer = client.recv()
            if answer["type"] != "connected":
                break
            made += 1
    assert made == 4 and answer["code"] == "rate_limited" and answer["retry_after_s"] > 0

    other = sign_up_guest()
    held = [RawClient(limited.ws_url, token=other.id_token) for _ in range(3)]
    try:
        session = held[0].init()["session_id"]
        for client in held[1:]:
            client.init(session_id=session)
        with RawClient(limited.ws_url, token=other.id_token) as extra:
            extra.send({"type": "init", "session_id": session, "token": other.id_token})
            error = extra.recv()
            assert error["code"] == "rate_limited" and error["retry_after_s"] > 0
            assert extra.closed_code() == 1008
    finally:
        for client in held:
            client.close()
    # Once they are closed, the user may connect again.
    deadline = time.monotonic() + 10
    while True:
        with RawClient(limited.ws_url, token=other.id_token) as client:
            client.send({"type": "init", "session_id": session, "token": other.id_token})
            if client.recv()["type"] == "connected":
                break
        assert time.monotonic() < deadline
        time.sleep(0.2)
