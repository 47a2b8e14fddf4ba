"""The edge's HTTP side, as a client sees it: where it is, `/api/config`, `/api/sessions`."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

WS_PATH = "/ws/chat"
TIMEOUT_S = 10.0


class EdgeError(Exception):
    """The edge's HTTP API could not be used."""


class EdgeUnauthorized(EdgeError):
    """The edge refused the credential (HTTP 401/403)."""


@dataclass(frozen=True)
class EdgeAddress:
    """One edge, from the URL a person gives: `ws(s)://host/ws/chat` or `http(s)://host`."""

    ws_url: str
    http_url: str  # the origin, no trailing slash: http://localhost:8000

    @classmethod
    def parse(cls, url: str) -> EdgeAddress:
        parts = urllib.parse.urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in ("ws", "wss", "http", "https") or not parts.netloc:
            raise ValueError(f"not an edge URL (ws://, wss://, http:// or https://): {url!r}")
        secure = scheme in ("wss", "https")
        path = parts.path.rstrip("/")
        # Given the page's address, the chat socket is at its usual path.
        if scheme in ("http", "https") and not path.endswith(WS_PATH):
            path = path + WS_PATH
        prefix = path[: -len(WS_PATH)] if path.endswith(WS_PATH) else ""
        ws_scheme, http_scheme = ("wss", "https") if secure else ("ws", "http")
        ws = urllib.parse.urlunsplit((ws_scheme, parts.netloc, path, "", ""))
        http = urllib.parse.urlunsplit((http_scheme, parts.netloc, prefix, "", ""))
        return cls(ws_url=ws, http_url=http.rstrip("/"))


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AuthConfig(_Model):
    mode: Literal["firebase", "none"]
    api_key: str | None = None
    auth_domain: str | None = None
    project_id: str | None = None
    emulator_url: str | None = None


class AgentConfig(_Model):
    mode: str = "offline"
    model: str | None = None


class EdgeConfig(_Model):
    auth: AuthConfig
    agent: AgentConfig | None = None


class SessionSummary(_Model):
    session_id: str
    title: str | None = None
    created_at: str | float | None = None
    updated_at: str | float | None = None
    last_seq: int = 0


_SESSIONS = TypeAdapter(list[SessionSummary])


def fetch_config(edge: EdgeAddress) -> EdgeConfig | None:
    """How the edge wants clients to sign in; None for an edge without `/api/config` (older)."""
    try:
        raw = _get(edge.http_url + "/api/config")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise EdgeError(f"{edge.http_url}/api/config answered HTTP {exc.code}") from None
    try:
        return EdgeConfig.model_validate(raw)
    except ValidationError as exc:
        raise EdgeError(f"{edge.http_url}/api/config answered an unexpected shape: {exc}") from None


def list_sessions(edge: EdgeAddress, id_token: str | None) -> list[SessionSummary]:
    """The signed-in user's sessions, newest first."""
    headers = {"Authorization": f"Bearer {id_token}"} if id_token else {}
    try:
        raw = _get(edge.http_url + "/api/sessions", headers)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise EdgeUnauthorized("the edge refused this sign-in for /api/sessions") from None
        raise EdgeError(f"{edge.http_url}/api/sessions answered HTTP {exc.code}") from None
    if isinstance(raw, dict) and isinstance(raw.get("sessions"), list):
        raw = raw["sessions"]  # tolerate a wrapped list
    try:
        return _SESSIONS.validate_python(raw)
    except ValidationError as exc:
        raise EdgeError(f"/api/sessions answered an unexpected shape: {exc}") from None


def _get(url: str, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError:
        raise
    except (OSError, ValueError) as exc:
        raise EdgeError(f"cannot reach {url}: {exc}") from None
