"""A local fake of the Gemini HTTP API, driven through the real google-genai client.

The SDK calls `POST /{version}/models/{model}:streamGenerateContent?alt=sse` and reads
`data: {json}` lines. What the fake answers is scripted per test: a test puts a marker such as
`[[t-1234]]` in its message and registers a `Script` for that marker; messages without a marker
get an echo in a few pieces. So tests that share one stack never see each other's scripts.
"""

from __future__ import annotations

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


@dataclass
class Reply:
    """One answer: text pieces, or a function call, streamed with the given delays."""

    chunks: list[str] = field(default_factory=list)
    first_delay_s: float = 0.0
    delay_s: float = 0.0
    function_call: tuple[str, dict[str, Any]] | None = None


@dataclass
class Script:
    """Replies in order, one per model call; the last one repeats. `errors` come first."""

    replies: list[Reply] = field(default_factory=list)
    # HTTP statuses to answer before any reply, one per call (e.g. [429, 429]).
    errors: list[int] = field(default_factory=list)
    # Answer every call with this status, forever.
    always_error: int | None = None


@dataclass
class Call:
    marker: str | None
    model: str
    body: dict[str, Any]
    at: float

    @property
    def last_user_text(self) -> str:
        return _last_user_text(self.body)


class FakeGemini:
    def __init__(self, default: Reply | None = None) -> None:
        self.default = default
        self._scripts: dict[str, Script] = {}
        self._used: dict[str, int] = defaultdict(int)
        self.calls: list[Call] = []
        self._lock = threading.Lock()
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

    def _next(self, marker: str | None, text: str) -> Reply | int:
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
            replies = script.replies or [Reply(chunks=_echo_chunks(text))]
            return replies[min(n - len(script.errors), len(replies) - 1)]

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
                    self._json(
                        404,
                        {
                            "error": {
                                "code": 404,
                                "message": "no such method",
                                "status": "NOT_FOUND",
                            }
                        },
                    )
                    return
                text = _last_user_text(body)
                found = _MARKER.search(text)
                marker = found.group(1) if found else None
                with fake._lock:
                    fake.calls.append(Call(marker, match.group(2), body, time.time()))
                reply = fake._next(marker, text)
                if isinstance(reply, int):
                    self._json(
                        reply,
                        {
                            "error": {
                                "code": reply,
                                "message": "scripted failure",
                                "status": _STATUS.get(reply, "UNKNOWN"),
                            }
                        },
                    )
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
                pieces: list[list[str]] = [[c] for c in reply.chunks] or [[]]
                try:
                    for i, piece in enumerate(pieces):
                        if i:
                            time.sleep(reply.delay_s)
                        last = i == len(pieces) - 1
                        self._chunk(f"data: {json.dumps(_response(piece, reply, last))}\r\n\r\n")
                    self._chunk("")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _chunk(self, text: str) -> None:
                data = text.encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _json(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def _response(texts: list[str], reply: Reply, final: bool) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": t} for t in texts]
    if final and reply.function_call is not None:
        name, args = reply.function_call
        parts.append({"functionCall": {"name": name, "args": args}})
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    out: dict[str, Any] = {"candidates": [candidate], "modelVersion": "fake-gemini"}
    if final:
        candidate["finishReason"] = "STOP"
        out["usageMetadata"] = {
            "promptTokenCount": 1,
            "candidatesTokenCount": 1,
            "totalTokenCount": 2,
        }
    return out


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
