from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from edge.security import content_security_policy
from edge.session_store import new_session_id, to_event
from edge.settings import EdgeSettings
from edge.transport import HandshakeRefused, check_handshake, origin_allowed


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "edge:8000", [], True),
        ("http://edge:8000", "edge:8000", [], True),
        ("https://edge:8000", "edge:8000", [], False),  # scheme counts
        ("http://edge:8001", "edge:8000", [], False),  # port counts
        ("https://evil.example", "edge:8000", [], False),
        ("https://chat.example", "edge:8000", ["https://chat.example"], True),
        ("https://chat.example:443", "edge:8000", ["https://chat.example"], True),
        ("http://chat.example", "edge:8000", ["https://chat.example"], False),
        ("https://evil.chat.example", "edge:8000", ["https://chat.example"], False),
        ("https://chat.example.evil", "edge:8000", ["https://chat.example"], False),
        ("null", "edge:8000", [], False),
        ("https://other.example", "edge:8000", ["*"], True),
    ],
)
def test_origins(origin: str | None, host: str, allowed: list[str], ok: bool) -> None:
    environ = {"HTTP_HOST": host, "wsgi.url_scheme": "http"}
    assert origin_allowed(origin, environ, EdgeSettings(allowed_origins=allowed)) is ok


def test_behind_a_tls_front_end_the_forwarded_scheme_is_the_pages() -> None:
    environ = {"HTTP_HOST": "chat.run.app", "wsgi.url_scheme": "http"}
    environ["HTTP_X_FORWARDED_PROTO"] = "https"
    settings = EdgeSettings()
    assert origin_allowed("https://chat.run.app", environ, settings)
    assert not origin_allowed("http://chat.run.app", environ, settings)


def handshake_environ(**extra: str) -> dict[str, str]:
    return {
        "REQUEST_METHOD": "GET",
        "HTTP_HOST": "edge:8000",
        "HTTP_UPGRADE": "websocket",
        "HTTP_CONNECTION": "keep-alive, Upgrade",
        "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==",
        "HTTP_SEC_WEBSOCKET_VERSION": "13",
        **extra,
    }


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ({"HTTP_SEC_WEBSOCKET_VERSION": "8"}, 426),
        ({"HTTP_UPGRADE": "h2c"}, 426),
        ({"HTTP_SEC_WEBSOCKET_KEY": ""}, 400),
        ({"HTTP_ORIGIN": "https://evil.example"}, 403),
        ({"REQUEST_METHOD": "POST"}, 405),
    ],
)
def test_bad_handshakes_are_refused_before_the_upgrade(extra: dict[str, str], status: int) -> None:
    with pytest.raises(HandshakeRefused) as refused:
        check_handshake(handshake_environ(**extra), EdgeSettings())
    assert refused.value.status == status
    if status == 426 and "HTTP_SEC_WEBSOCKET_VERSION" in extra:
        assert refused.value.headers["Sec-WebSocket-Version"] == "13"


def test_a_good_handshake_passes() -> None:
    check_handshake(handshake_environ(HTTP_ORIGIN="http://edge:8000"), EdgeSettings())


@pytest.mark.parametrize(
    "env", [{"DEPLOYCHAT_AUTH_MODE": "none"}, {"FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099"}]
)
def test_no_sign_in_and_the_emulator_are_refused_on_cloud_run(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    monkeypatch.setenv("K_SERVICE", "deploychat-edge")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        EdgeSettings()


def test_sign_in_is_on_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPLOYCHAT_AUTH_MODE", raising=False)
    assert EdgeSettings().auth_mode == "firebase"


def test_the_csp_allows_only_our_scripts_and_sign_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    csp = content_security_policy(EdgeSettings(firebase_auth_domain="p.firebaseapp.com"))
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self' https://apis.google.com"
    assert directives["frame-src"] == "https://p.firebaseapp.com"
    assert directives["frame-ancestors"] == "'none'"


def test_a_corrupt_stored_event_keeps_its_place_as_an_error() -> None:
    event = to_event("000000000007", {"type": "chat", "seq": 7, "turn_id": "t", "role": "robot"})
    assert event.type == "error" and event.seq == 7 and event.code == "internal"
    assert to_event("000000000009", {"garbage": True}).seq == 9


def test_allowed_origins_come_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYCHAT_ALLOWED_ORIGINS", '["https://a.example"]')
    monkeypatch.setenv("PORT", "9000")
    settings = EdgeSettings()
    assert settings.allowed_origins == ["https://a.example"] and settings.port == 9000


def test_new_session_ids_never_start_with_a_dash() -> None:
    ids = [new_session_id() for _ in range(5000)]
    assert not any(i.startswith("-") for i in ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)
    assert len(set(ids)) == len(ids)
