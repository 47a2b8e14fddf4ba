from __future__ import annotations

import pytest

from edge.app import origin_allowed
from edge.session_store import to_event
from edge.settings import EdgeSettings


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "edge:8000", [], True),
        ("http://edge:8000", "edge:8000", [], True),
        ("https://evil.example", "edge:8000", [], False),
        ("https://chat.example", "edge:8000", ["https://chat.example"], True),
        ("https://other.example", "edge:8000", ["*"], True),
    ],
)
def test_origins(origin: str | None, host: str, allowed: list[str], ok: bool) -> None:
    assert origin_allowed(origin, host, EdgeSettings(allowed_origins=allowed)) is ok


def test_a_corrupt_stored_event_keeps_its_place_as_an_error() -> None:
    event = to_event("000000000007", {"type": "chat", "seq": 7, "turn_id": "t", "role": "robot"})
    assert event.type == "error" and event.seq == 7 and event.code == "internal"
    assert to_event("000000000009", {"garbage": True}).seq == 9


def test_allowed_origins_come_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYCHAT_ALLOWED_ORIGINS", '["https://a.example"]')
    monkeypatch.setenv("PORT", "9000")
    settings = EdgeSettings()
    assert settings.allowed_origins == ["https://a.example"] and settings.port == 9000
