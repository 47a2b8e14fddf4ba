"""How the model's errors, finishes and refusals are put to people (no network)."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import errors as genai_errors

from agent.model_errors import (
    FINISH_NOTES,
    ModelBusy,
    ModelError,
    block_note,
    classify_api_error,
    finish_note,
    parse_duration,
)
from tests.support.fake_gemini import (
    ApiError,
    api_key_invalid,
    overloaded,
    permission_denied,
    quota_exhausted,
    status_body,
)


def _classify(error: ApiError) -> ModelBusy | ModelError:
    return classify_api_error(genai_errors.APIError(error.status, error.body))


def test_a_bad_key_is_model_unavailable_and_its_words_stay_in_the_logs() -> None:
    error = _classify(api_key_invalid())
    assert isinstance(error, ModelError)
    assert (error.code, error.retryable) == ("model_unavailable", False)
    assert "API key not valid" not in error.message
    assert "API key not valid" in error.detail and "API_KEY_INVALID" in error.detail


def test_a_disabled_service_or_a_denied_permission_is_model_unavailable() -> None:
    error = _classify(permission_denied())
    assert isinstance(error, ModelError) and error.code == "model_unavailable"
    assert "123456" not in error.message and "123456" in error.detail
    bare = _classify(ApiError(401, status_body(401, "UNAUTHENTICATED", "no")))
    assert isinstance(bare, ModelError) and bare.code == "model_unavailable"


def test_quota_is_rate_limited_with_the_servers_delay() -> None:
    error = _classify(quota_exhausted("2s"))
    assert isinstance(error, ModelBusy)
    assert (error.code, error.retry_after_s) == ("rate_limited", 2.0)
    assert "plan and billing" not in error.message and "plan and billing" in error.detail
    assert _classify(quota_exhausted(None)).retry_after_s is None  # type: ignore[union-attr]
    gave_up = error.gave_up(waited_too_long=True)
    assert gave_up.code == "rate_limited" and gave_up.retryable is True
    assert "2 seconds" in gave_up.message


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        (overloaded(), ModelBusy, "model_unavailable"),
        (ApiError(500, status_body(500, "INTERNAL", "x")), ModelBusy, "model_unavailable"),
        (ApiError(504, status_body(504, "DEADLINE_EXCEEDED", "x")), ModelBusy, "model_unavailable"),
        (ApiError(404, status_body(404, "NOT_FOUND", "no model")), ModelError, "model_unavailable"),
        (
            ApiError(
                400, status_body(400, "FAILED_PRECONDITION", "User location is not supported")
            ),
            ModelError,
            "model_unavailable",
        ),
        (ApiError(400, status_body(400, "INVALID_ARGUMENT", "bad")), ModelError, "agent_failed"),
    ],
)
def test_other_statuses(error: ApiError, kind: type, code: str) -> None:
    classified = _classify(error)
    assert isinstance(classified, kind) and classified.code == code
    assert classified.message.endswith(".") and str(error.body) not in classified.message


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("2s", 2.0), ("0.5s", 0.5), ("47s", 47.0), ("3.s", 3.0), ("2", None), (None, None), (2, None)],
)
def test_durations(value: Any, seconds: float | None) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "reason",
    [
        "MAX_TOKENS",
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "MALFORMED_FUNCTION_CALL",
        "OTHER",
        "LANGUAGE",
        "IMAGE_SAFETY",
        "UNEXPECTED_TOOL_CALL",
        "SOMETHING_NEW",
    ],
)
def test_every_finish_but_stop_has_a_sentence(reason: str) -> None:
    note = finish_note(reason)
    assert note and note.endswith(".") and len(note) < 200
    assert note == FINISH_NOTES.get(reason, FINISH_NOTES["OTHER"])


def test_a_normal_finish_adds_nothing() -> None:
    assert finish_note("STOP") is None
    assert finish_note("FINISH_REASON_UNSPECIFIED") is None


@pytest.mark.parametrize("reason", ["SAFETY", "BLOCKLIST", "PROHIBITED_CONTENT", "OTHER", "NEW"])
def test_a_refused_prompt_says_so(reason: str) -> None:
    assert block_note(reason).startswith("The model declined to answer this message")
