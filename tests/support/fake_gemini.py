"""A local fake of the Gemini HTTP API, driven through the real google-genai client.

The SDK calls `POST /{version}/models/{model}:streamGenerateContent?alt=sse` and reads
`data: {json}` lines. What the fake answers is scripted per test: a test puts a marker such as
`[[t-1234]]` in its message and registers a `Script` for that marker; messages without a marker
get an echo in a few pieces. So tests that share one stack never see each other's scripts.

The answers follow the public API's shapes (GenerateContentResponse, google.rpc.Status):
- a normal answer ends with `finishReason: STOP` (or `MAX_TOKENS`) on its last text chunk;
- a blocked or failed answer (`SAFETY`, `RECITATION`, `MALFORMED_FUNCTION_CALL`...) ends with a
  candidate that has a `finishReason` (and often a `finishMessage`) but no `content`;
- a refused prompt is one chunk with `promptFeedback.blockReason` and no `candidates`;
- an error is a `google.rpc.Status` under `error`, with `details` such as ErrorInfo, RetryInfo
  and QuotaFailure (see `api_key_invalid()`, `quota_exhausted()`).
A request with tools off (`toolConfig.functionCallingConfig.mode: NONE`) never gets a call.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PATH = re.compile(
    r"^/(?:[^/]+/)*?(v1beta|v1alpha|v1)/models/([^:/]+):(streamGenerateContent|generateContent)"
)
_MARKER = re.compile(r"\[\[([A-Za-z0-9_-]+)\]\]")

# Finishes whose last chunk carries no content (the answer, or its call, was withheld).
_WITHHELD = {
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "MALFORMED_FUNCTION_CALL",
    "OTHER",
    "LANGUAGE",
    "UNEXPECTED_TOOL_CALL",
}
_FINISH_MESSAGES = {
    "MALFORMED_FUNCTION_CALL": "Malformed function call: print(default_api.analyse_repository(",
}


@dataclass
class Reply:
    """One answer: text pieces, or a function call, streamed with the given delays."""

    chunks: list[str] = field(default_factory=list)
    first_delay_s: float = 0.0
    delay_s: float = 0.0
    function_call: tuple[str, dict[str, Any]] | None = None
    # How the answer ends: the candidate's finishReason (and finishMessage).
    finish_reason: str = "STOP"
    finish_message: str | None = None
    # The prompt is refused: one chunk with promptFeedback.blockReason, no candidates.
    block_reason: str | None = None
    # After this many chunks, the stream goes silent (no bytes, connection open) for `stall_s`.
    stall_after: int | None = None
    stall_s: float = 30.0
    # A thought part (hidden from users; its signature must go back) before the text.
    thought: str | None = None


@dataclass(frozen=True)
class ApiError:
    """An error answer: an HTTP status and a google.rpc.Status body."""

    status: int
    body: dict[str, Any]


@dataclass
class Script:
    """Replies in order, one per model call; the last one repeats. `errors` come first."""

    replies: list[Reply] = field(default_factory=list)
    # Errors to answer before any reply, one per call: HTTP statuses (e.g. [429, 429]) or
    # ApiError payloads as the real API sends them.
    errors: list[int | ApiError] = field(default_factory=list)
    # Answer every call with this, forever.
    always_error: int | ApiError | None = None
    # What a call with tools off gets (default: the next reply, without its function call).
    tools_off: Reply | None = None


@dataclass
class Call:
    marker: str | None
    model: str
    body: dict[str, Any]
    at: float

    @property
    def last_user_text(self) -> str:
        return _last_user_text(self.body)

    @property
    def tools_off(self) -> bool:
        return _tools_off(self.body)


class FakeGemini:
    def __init__(self, default: Reply | None = None) -> None:
        self.default = default
        self._scripts: dict[str, Script] = {}
        self._used: dict[str, int] = defaultdict(int)
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> FakeGemini:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def script(self, marker: str, script: Script) -> None:
        with self._lock:
            self._scripts[marker] = script
            self._used[marker] = 0

    def calls_for(self, marker: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.marker == marker]

    # ---------------------------------------------------------------- serving

    def _next(self, marker: str | None, text: str, tools_off: bool) -> Reply | int | ApiError:
        with self._lock:
            script = self._scripts.get(marker) if marker else None
            if script is None:
                return self.default or Reply(chunks=_echo_chunks(text))
            n = self._used[marker]  # type: ignore[index]
            self._used[marker] += 1  # type: ignore[index]
            if script.always_error is not None:
                return script.always_error
            if n < len(script.errors):
                return script.errors[n]
            if tools_off and script.tools_off is not None:
                return script.tools_off
            replies = script.replies or [Reply(chunks=_echo_chunks(text))]
            reply = replies[min(n - len(script.errors), len(replies) - 1)]
            if tools_off and reply.function_call is not None:
                # The real API never calls a function with function calling off.
                reply = dataclasses.replace(reply, function_call=None)
            return reply

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                match = _PATH.match(self.path)
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if match is None:
                    self._json(404, status_body(404, "NOT_FOUND", "no such method"))
                    return
                text = _last_user_text(body)
                found = _MARKER.search(text)
                marker = found.group(1) if found else None
                with fake._lock:
                    fake.calls.append(Call(marker, match.group(2), body, time.time()))
                reply = fake._next(marker, text, _tools_off(body))
                if isinstance(reply, int):
                    reply = ApiError(
                        reply, status_body(reply, _STATUS.get(reply, "UNKNOWN"), "scripted failure")
                    )
                if isinstance(reply, ApiError):
                    self._json(reply.status, reply.body)
                    return
                if match.group(3) == "generateContent":
                    self._json(200, _response(["".join(reply.chunks)], reply, final=True))
                    return
                self._stream(reply)

            def _stream(self, reply: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                time.sleep(reply.first_delay_s)
                try:
                    for i, event in enumerate(_events(reply)):
                        if i == reply.stall_after:
                            # Silent, the connection open: then cut, never finished.
                            fake._stopping.wait(reply.stall_s)
                            self.close_connection = True
                            return
                        if i:
                            time.sleep(reply.delay_s)
                        self._chunk(f"data: {json.dumps(event)}\r\n\r\n")
                    self._chunk("")
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _chunk(self, text: str) -> None:
                data = text.encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _json(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# ---------------------------------------------------------------- the real API's error payloads


def status_body(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A google.rpc.Status as the API's JSON error body."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def error_info(reason: str, **metadata: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com", **metadata},
    }


def retry_info(delay: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def api_key_invalid() -> ApiError:
    """What the API answers a key that is not valid."""
    message = "API key not valid. Please pass a valid API key."
    return ApiError(
        400,
        status_body(
            400,
            "INVALID_ARGUMENT",
            message,
            [
                error_info("API_KEY_INVALID"),
                {
                    "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                    "locale": "en-US",
                    "message": message,
                },
            ],
        ),
    )


def permission_denied() -> ApiError:
    """A key of a project that has not enabled the API."""
    return ApiError(
        403,
        status_body(
            403,
            "PERMISSION_DENIED",
            "Generative Language API has not been used in project 123456 before or it is "
            "disabled. Enable it by visiting https://console.developers.google.com/apis/api/"
            "generativelanguage.googleapis.com/overview?project=123456 then retry.",
            [error_info("SERVICE_DISABLED", consumer="projects/123456")],
        ),
    )


def quota_exhausted(retry_delay: str | None = "2s", model: str = "gemini-2.5-flash") -> ApiError:
    """A 429 over the per-minute quota, with the delay the server asks for."""
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/"
                    "generate_content_free_tier_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    "quotaDimensions": {"location": "global", "model": model},
                    "quotaValue": "10",
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
    ]
    if retry_delay is not None:
        details.append(retry_info(retry_delay))
    return ApiError(
        429,
        status_body(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details. For "
            "more information on this error, head to: "
            "https://ai.google.dev/gemini-api/docs/rate-limits.",
            details,
        ),
    )


def overloaded() -> ApiError:
    return ApiError(
        503, status_body(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
    )


# ---------------------------------------------------------------- answers


def _events(reply: Reply) -> list[dict[str, Any]]:
    """The SSE events of one streamed answer."""
    if reply.block_reason is not None:
        return [
            {
                "promptFeedback": {
                    "blockReason": reply.block_reason,
                    "safetyRatings": _ratings(reply.block_reason),
                },
                "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
                "modelVersion": "fake-gemini",
            }
        ]
    if reply.finish_reason in _WITHHELD:
        # The text streamed so far, then a candidate without content that says why it ended.
        events = [_response([c], reply, final=False) for c in reply.chunks]
        candidate: dict[str, Any] = {"finishReason": reply.finish_reason, "index": 0}
        message = reply.finish_message or _FINISH_MESSAGES.get(reply.finish_reason)
        if message:
            candidate["finishMessage"] = message
        if reply.finish_reason in ("SAFETY", "PROHIBITED_CONTENT"):
            candidate["safetyRatings"] = _ratings(reply.finish_reason)
        events.append(
            {"candidates": [candidate], "usageMetadata": _usage(), "modelVersion": "fake-gemini"}
        )
        return events
    pieces: list[list[str]] = [[c] for c in reply.chunks] or [[]]
    events = []
    for i, piece in enumerate(pieces):
        if i == 0 and reply.thought is not None:
            events.append(_thought(reply.thought))
        events.append(_response(piece, reply, i == len(pieces) - 1))
    return events


def _thought(text: str) -> dict[str, Any]:
    parts = [{"text": text, "thought": True, "thoughtSignature": "c2lnbmF0dXJl"}]
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
        "modelVersion": "fake-gemini",
    }


def _ratings(reason: str) -> list[dict[str, Any]]:
    if reason not in ("SAFETY", "PROHIBITED_CONTENT"):
        return []
    return [
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    ]


def _usage() -> dict[str, Any]:
    return {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}


def _response(texts: list[str], reply: Reply, final: bool) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": t} for t in texts]
    if final and reply.function_call is not None and reply.finish_reason not in _WITHHELD:
        name, args = reply.function_call
        parts.append({"functionCall": {"name": name, "args": args}})
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    out: dict[str, Any] = {"candidates": [candidate], "modelVersion": "fake-gemini"}
    if final:
        candidate["finishReason"] = reply.finish_reason
        out["usageMetadata"] = _usage()
    return out


def _tools_off(body: dict[str, Any]) -> bool:
    mode = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode")
    return not body.get("tools") or mode == "NONE"


def _last_user_text(body: dict[str, Any]) -> str:
    for content in reversed(body.get("contents") or []):
        if content.get("role", "user") == "user":
            texts = [p.get("text", "") for p in content.get("parts") or [] if "text" in p]
            if texts:
                return "".join(texts)
    return ""


def _echo_chunks(text: str) -> list[str]:
    answer = f"Echo: {text}"
    size = max(1, len(answer) // 3)
    return [answer[i : i + size] for i in range(0, len(answer), size)]
