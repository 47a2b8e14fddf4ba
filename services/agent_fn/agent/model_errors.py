"""What the model's failures and refusals mean for people.

Google's APIs answer errors as a `google.rpc.Status` (`code`, `message`, `status`, `details`
holding `ErrorInfo`, `RetryInfo`, `QuotaFailure`...). Each maps to a stable code and one clear
sentence for the user; the API's own text goes to the logs alone, as it may name keys, projects
or quotas that are the operator's business. A finished stream's `finishReason`, or a prompt's
`promptFeedback.blockReason`, maps to a sentence that ends the answer, so that no refusal or cut
reaches the user as an empty or silently truncated message.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from google.genai import errors as genai_errors

from deploychat.errors import PermanentError, TransientError

if TYPE_CHECKING:
    from deploychat.protocol import ErrorCode

# ErrorInfo reasons that say the credentials or the project cannot use the API: no retry helps.
_ACCESS_REASONS = {
    "API_KEY_INVALID",
    "API_KEY_EXPIRED",
    "API_KEY_SERVICE_BLOCKED",
    "API_KEY_HTTP_REFERRER_BLOCKED",
    "API_KEY_IP_ADDRESS_BLOCKED",
    "API_KEY_ANDROID_APP_BLOCKED",
    "API_KEY_IOS_APP_BLOCKED",
    "SERVICE_DISABLED",
    "CONSUMER_SUSPENDED",
    "BILLING_DISABLED",
    "ACCESS_TOKEN_EXPIRED",
    "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
    "IAM_PERMISSION_DENIED",
    "USER_PROJECT_DENIED",
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)s\s*$")

ACCESS_MESSAGE = (
    "The assistant's model service refused its credentials, so it cannot answer right now. "
    "Whoever runs this assistant needs to check its model API key or permissions."
)
MODEL_MISSING_MESSAGE = (
    "The model this assistant is set up to use could not be found. Whoever runs this "
    "assistant needs to check its model setting."
)
REGION_MESSAGE = "The model service is not available from where this assistant runs."
QUOTA_MESSAGE = "The model is over its usage limit right now. Try again in a minute."
UNAVAILABLE_MESSAGE = "The model service is unavailable right now. Try again in a moment."
UNREACHABLE_MESSAGE = "The model service could not be reached. Try again in a moment."
STALLED_MESSAGE = "The model stopped responding. Try again in a moment."
REJECTED_MESSAGE = (
    "The model could not process this request. Try rephrasing it, or start a new conversation."
)
DEADLINE_MESSAGE = "The model took too long to answer, so I stopped here. Try again in a moment."


class ModelError(PermanentError):
    """The model cannot answer this turn: `message` is for the user, `detail` for the logs."""

    def __init__(
        self, message: str, code: ErrorCode, *, retryable: bool, detail: str | None = None
    ) -> None:
        super().__init__(message, code)
        self.retryable = retryable
        self.detail = detail or message


class ModelBusy(TransientError):
    """A failure worth retrying within the turn (429, 5xx, a cut or stalled stream)."""

    def __init__(
        self,
        message: str,
        code: ErrorCode,
        *,
        detail: str,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, code)
        self.detail = detail
        self.retry_after_s = retry_after_s

    def gave_up(self, waited_too_long: bool = False) -> ModelError:
        """The error that ends the turn when no more retries fit."""
        message = self.message
        if waited_too_long and self.retry_after_s is not None:
            message = (
                "The model is over its usage limit right now. "
                f"Try again in about {_seconds(self.retry_after_s)}."
            )
        return ModelError(message, self.code, retryable=True, detail=self.detail)


def classify_api_error(exc: genai_errors.APIError) -> ModelBusy | ModelError:
    error = _status_body(exc.details)
    status = str(exc.status or error.get("status") or "")
    code = int(exc.code or 0)
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    reasons = {str(d.get("reason")) for d in details if _is(d, "ErrorInfo")}
    retry_after = next(
        (s for d in details if _is(d, "RetryInfo") if (s := parse_duration(d.get("retryDelay")))),
        None,
    )
    detail = f"the model answered {code} {status}: {exc.message or ''}".strip()
    if reasons:
        detail += f" (reasons: {', '.join(sorted(reasons))})"
    if retry_after is not None:
        detail += f" (retry in {retry_after:g} s)"

    denied = status in ("UNAUTHENTICATED", "PERMISSION_DENIED") or code in (401, 403)
    if denied or reasons & _ACCESS_REASONS:
        return ModelError(ACCESS_MESSAGE, "model_unavailable", retryable=False, detail=detail)
    if code == 429 or status == "RESOURCE_EXHAUSTED":
        return ModelBusy(QUOTA_MESSAGE, "rate_limited", detail=detail, retry_after_s=retry_after)
    if code == 404 or status == "NOT_FOUND":
        return ModelError(
            MODEL_MISSING_MESSAGE, "model_unavailable", retryable=False, detail=detail
        )
    if status == "FAILED_PRECONDITION":
        # What the API answers from a region it does not serve.
        return ModelError(REGION_MESSAGE, "model_unavailable", retryable=False, detail=detail)
    if code in (408, 500, 502, 503, 504) or code > 500:
        return ModelBusy(
            UNAVAILABLE_MESSAGE, "model_unavailable", detail=detail, retry_after_s=retry_after
        )
    return ModelError(REJECTED_MESSAGE, "agent_failed", retryable=False, detail=detail)


def parse_duration(value: Any) -> float | None:
    """A google.protobuf.Duration in its JSON form ("2s", "0.5s"), in seconds."""
    if not isinstance(value, str):
        return None
    match = _DURATION.match(value)
    return float(match.group(1)) if match else None


def _status_body(details: Any) -> dict[str, Any]:
    if isinstance(details, list) and details:
        details = details[0]
    if not isinstance(details, dict):
        return {}
    inner = details.get("error", details)
    return inner if isinstance(inner, dict) else {}


def _is(detail: dict[str, Any], kind: str) -> bool:
    return str(detail.get("@type", "")).endswith(f"google.rpc.{kind}")


def _seconds(value: float) -> str:
    whole = max(1, round(value))
    if whole < 90:
        return f"{whole} seconds"
    return f"{round(whole / 60)} minutes"


# ---------------------------------------------------------------- finishes


# finishReason values the answer may end with besides STOP, each as the user is told.
FINISH_NOTES = {
    "MAX_TOKENS": "The answer was cut off at the length limit. Ask me to continue, or to be "
    "briefer.",
    "SAFETY": "The model stopped this answer because its safety filters flagged it. Try "
    "rephrasing your request.",
    "RECITATION": "The model stopped this answer because it was repeating existing material too "
    "closely. Try asking in a different way.",
    "BLOCKLIST": "The model stopped this answer because it contained blocked terms.",
    "PROHIBITED_CONTENT": "The model declined to answer this because it may involve prohibited "
    "content.",
    "SPII": "The model stopped this answer because it might have revealed sensitive personal "
    "information.",
    "LANGUAGE": "The model stopped this answer because it is in a language the model does not "
    "support.",
    "MALFORMED_FUNCTION_CALL": "The model tried to use a tool but twice wrote a call that could "
    "not be read, so I stopped here. Try asking again, perhaps more specifically.",
    "OTHER": "The model stopped this answer without saying why. Try again, or rephrase your "
    "request.",
}
for _image, _like in (
    ("IMAGE_SAFETY", "SAFETY"),
    ("IMAGE_PROHIBITED_CONTENT", "PROHIBITED_CONTENT"),
    ("IMAGE_RECITATION", "RECITATION"),
    ("IMAGE_OTHER", "OTHER"),
    ("UNEXPECTED_TOOL_CALL", "MALFORMED_FUNCTION_CALL"),
    ("TOO_MANY_TOOL_CALLS", "MALFORMED_FUNCTION_CALL"),
):
    FINISH_NOTES[_image] = FINISH_NOTES[_like]

# Finishes that mean "try the same step again once": the model wrote a call it could not close.
RETRY_ONCE = {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"}
# Finishes that end the answer as it is (with nothing to add).
NORMAL = {"STOP", "FINISH_REASON_UNSPECIFIED", "NO_IMAGE"}

_BLOCK_WHY = {
    "SAFETY": "its safety filters flagged the request",
    "BLOCKLIST": "the request contains blocked terms",
    "PROHIBITED_CONTENT": "the request may involve prohibited content",
    "IMAGE_SAFETY": "its safety filters flagged an image in the request",
    "MODEL_ARMOR": "a content policy flagged the request",
    "JAILBREAK": "the request looked like an attempt to get round its rules",
}


def finish_note(reason: str) -> str | None:
    """The sentence that ends an answer finished for `reason`, or None for a normal finish."""
    if reason in NORMAL:
        return None
    return FINISH_NOTES.get(reason, FINISH_NOTES["OTHER"])


def block_note(reason: str) -> str:
    """The sentence for a prompt the API refused to answer (promptFeedback.blockReason)."""
    why = _BLOCK_WHY.get(reason, "the request was blocked")
    return f"The model declined to answer this message: {why}. Try rephrasing it."
