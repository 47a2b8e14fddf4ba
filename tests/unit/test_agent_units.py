from __future__ import annotations

import pytest
from google.genai import errors as genai_errors

from agent.model import OfflineModel, build_model, classify_api_error
from agent.settings import AgentSettings
from deploychat.errors import PermanentError, TransientError


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (429, TransientError, "model_unavailable"),
        (503, TransientError, "model_unavailable"),
        (403, PermanentError, "model_unavailable"),
        (400, PermanentError, "agent_failed"),
    ],
)
def test_model_errors_are_classified(status: int, kind: type, code: str) -> None:
    error = classify_api_error(genai_errors.APIError(status, {"error": {"message": "m"}}))
    assert isinstance(error, kind) and error.code == code


def test_without_credentials_the_agent_is_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "DEPLOYCHAT_GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    model = build_model(AgentSettings())
    assert model.offline is True


def test_offline_answers_stream_in_several_pieces() -> None:
    pieces = list(OfflineModel(0).stream([], "deploy my app please"))
    assert len(pieces) >= 3
    text = "".join(pieces)
    assert text.startswith("**Offline mode**") and "deploy my app please" in text


def test_the_key_is_read_from_gemini_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "sekret-value-123")
    settings = AgentSettings()
    assert settings.gemini_api_key is not None
    assert settings.gemini_api_key.get_secret_value() == "sekret-value-123"
    assert "sekret-value-123" not in repr(settings)
