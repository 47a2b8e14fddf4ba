"""Google sign-in for a command line: OAuth 2.0 for installed apps, with a loopback redirect.

1. A one-shot HTTP listener on 127.0.0.1, on a port the system picks.
2. The browser opens Google's consent page with a PKCE challenge (S256) and a random `state`.
3. Google redirects to the listener with a code; the state must match.
4. The code and the PKCE verifier are traded at the token endpoint for a Google ID token.
5. That ID token signs in to Firebase with accounts:signInWithIdp (see identity.py).

Google's endpoints are settings, so tests run the whole flow against a local fake.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from .identity import AuthRejected, AuthUnreachable

AUTH_URI = "https://accounts.google.com/o/oauth2/v2/auth"
TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPES = "openid email profile"

_DONE_PAGE = (
    b"<!doctype html><meta charset=utf-8><title>deploychat</title>"
    b"<p>Signed in. You can close this tab and go back to the terminal.</p>"
)
_FAILED_PAGE = (
    b"<!doctype html><meta charset=utf-8><title>deploychat</title>"
    b"<p>Signing in did not work. The terminal says why.</p>"
)


@dataclass(frozen=True)
class GoogleClient:
    client_id: str
    # Google issues installed-app clients a "secret" that is not secret (it ships in the app);
    # its token endpoint still asks for it. PKCE is what protects the code.
    client_secret: str | None = None
    auth_uri: str = AUTH_URI
    token_uri: str = TOKEN_URI


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(64)  # 86 characters, within RFC 7636's 43-128
        return cls(verifier, challenge_for(verifier))


def challenge_for(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_url(client: GoogleClient, redirect_uri: str, pkce: Pkce, state: str) -> str:
    query = urllib.parse.urlencode(
        {
            "client_id": client.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": SCOPES,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
            "state": state,
            "prompt": "select_account",
        }
    )
    return f"{client.auth_uri}?{query}"


@dataclass
class _Answer:
    code: str | None = None
    error: str | None = None


class LoopbackListener:
    """Waits for the one redirect that carries the code (and ignores anything else, e.g. a
    browser asking for /favicon.ico)."""

    def __init__(self, state: str) -> None:
        self._state = state
        self._answer = _Answer()
        self._got = threading.Event()
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                if not ({"code", "error", "state"} & query.keys()):
                    self.send_error(404)
                    return
                ok = listener._take(query)
                self.send_response(200 if ok else 400)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(_DONE_PAGE if ok else _FAILED_PAGE)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the terminal is the person's, not the server's log

        self._server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def __enter__(self) -> LoopbackListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _take(self, query: dict[str, list[str]]) -> bool:
        if self._got.is_set():
            return False
        state = (query.get("state") or [""])[0]
        if not secrets.compare_digest(state, self._state):
            # Someone else's redirect (or a forged one): never trade its code.
            self._answer.error = "the sign-in answer did not match this request (state)"
        elif "error" in query:
            self._answer.error = f"Google said: {query['error'][0]}"
        else:
            self._answer.code = query["code"][0]
        self._got.set()
        return self._answer.code is not None

    def wait(self, timeout_s: float) -> str:
        if not self._got.wait(timeout_s):
            raise AuthRejected("timeout", f"no answer from the browser within {timeout_s:.0f} s")
        if self._answer.code is None:
            raise AuthRejected("denied", self._answer.error or "no code")
        return self._answer.code


def exchange_code(client: GoogleClient, code: str, redirect_uri: str, verifier: str) -> str:
    """Trades the code for Google's ID token (a JWT naming the Google account)."""
    form = {
        "code": code,
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "grant_type": "authorization_code",
        "code_verifier": verifier,
    }
    if client.client_secret:
        form["client_secret"] = client.client_secret
    request = urllib.request.Request(
        client.token_uri,
        data=urllib.parse.urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("error_description") or f"HTTP {exc.code}"
        except (OSError, ValueError, AttributeError):
            detail = f"HTTP {exc.code}"
        if exc.code >= 500:
            raise AuthUnreachable(f"Google's token endpoint failed: {detail}") from None
        raise AuthRejected("invalid_grant", f"Google refused the sign-in: {detail}") from None
    except (OSError, ValueError) as exc:
        raise AuthUnreachable(f"cannot reach {client.token_uri}: {exc}") from None
    id_token = answer.get("id_token") if isinstance(answer, dict) else None
    if not isinstance(id_token, str) or not id_token:
        raise AuthRejected("no_id_token", "Google's answer held no ID token (scope openid?)")
    return id_token


def google_id_token(
    client: GoogleClient,
    open_browser: Callable[[str], object],
    *,
    timeout_s: float = 300.0,
    announce: Callable[[str], None] = lambda url: None,
) -> tuple[str, str]:
    """The whole loopback flow; returns (Google ID token, the redirect URI used)."""
    pkce = Pkce.new()
    state = secrets.token_urlsafe(24)
    with LoopbackListener(state) as listener:
        url = authorization_url(client, listener.redirect_uri, pkce, state)
        announce(url)
        open_browser(url)
        code = listener.wait(timeout_s)
        return exchange_code(client, code, listener.redirect_uri, pkce.verifier), (
            listener.redirect_uri
        )


def firebase_post_body(google_id_token: str) -> str:
    return urllib.parse.urlencode({"id_token": google_id_token, "providerId": "google.com"})
