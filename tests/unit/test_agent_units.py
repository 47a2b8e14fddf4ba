from __future__ import annotations

import pytest
from google.genai import errors as genai_errors

from agent.model import ToolCall, ToolResult, TurnContext, build_model, classify_api_error
from agent.offline import OfflineModel, parse_command
from agent.settings import AgentSettings
from deploychat.errors import PermanentError, TransientError


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (429, TransientError, "rate_limited"),
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
    session = OfflineModel(0).start([], "deploy my app please", TurnContext())
    pieces = list(session.stream())
    assert len(pieces) >= 3 and all(isinstance(p, str) for p in pieces)
    text = "".join(str(p) for p in pieces)
    assert text.startswith("**Offline mode**") and "deploy my app please" in text


def test_offline_runs_the_same_tools_and_summarises_their_results() -> None:
    session = OfflineModel(0).start([], "analyse ./examples/hello-flask", TurnContext())
    first = list(session.stream())
    call = first[-1]
    assert call == ToolCall("analyse_repository", {"source": "./examples/hello-flask"})
    session.add_tool_results([ToolResult(call, {"summary": "It is a Flask app."})])
    assert "".join(str(p) for p in session.stream()) == "It is a Flask app."


def test_offline_commands() -> None:
    assert parse_command("deploy ./app to cloud run project my-proj region europe-west1") == (
        ToolCall(
            "request_deployment",
            {
                "source": "./app",
                "target": "cloud_run",
                "project": "my-proj",
                "region": "europe-west1",
            },
        )
    )
    assert parse_command("Write a Dockerfile.") == ToolCall("generate_dockerfile", {})
    assert parse_command("how are you?") is None


def test_the_key_is_read_from_gemini_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "sekret-value-123")
    settings = AgentSettings()
    assert settings.gemini_api_key is not None
    assert settings.gemini_api_key.get_secret_value() == "sekret-value-123"
    assert "sekret-value-123" not in repr(settings)
