"""Google's OAuth 2.0 endpoints for installed apps, faked locally: the consent page answers at
once (as if the person chose their account) and the token endpoint checks PKCE as Google does.

The ID token it issues is an unsigned JWT naming the account; the Firebase Auth emulator takes
such tokens in accounts:signInWithIdp, so the flow ends in a real emulator user.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str


@dataclass
class FakeGoogleOAuth:
    email: str
    sub: str = field(default_factory=lambda: str(secrets.randbelow(10**20)))
    grants: dict[str, _Grant] = field(default_factory=dict)
    # What the token endpoint was asked, for assertions.
    exchanges: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parts.query))
                if parts.path != "/auth" or query.get("code_challenge_method") != "S256":
                    self.send_error(400, "expected /auth with an S256 code challenge")
                    return
                code = secrets.token_urlsafe(16)
                fake.grants[code] = _Grant(
                    query["client_id"], query["redirect_uri"], query["code_challenge"]
                )
                back = urllib.parse.urlencode({"code": code, "state": query.get("state", "")})
                self.send_response(302)
                self.send_header("Location", f"{query['redirect_uri']}?{back}")
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                fake.exchanges.append(form)
                grant = fake.grants.pop(form.get("code", ""), None)
                verifier = form.get("code_verifier", "")
                digest = hashlib.sha256(verifier.encode()).digest()
                challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
                if (
                    self.path != "/token"
                    or grant is None
                    or form.get("grant_type") != "authorization_code"
                    or grant.redirect_uri != form.get("redirect_uri")
                    or grant.client_id != form.get("client_id")
                    or challenge != grant.challenge
                ):
                    self._json(400, {"error": "invalid_grant", "error_description": "Bad Request"})
                    return
                self._json(
                    200,
                    {
                        "access_token": secrets.token_urlsafe(16),
                        "expires_in": 3599,
                        "token_type": "Bearer",
                        "scope": "openid email profile",
                        "id_token": fake.id_token(grant.client_id),
                    },
                )

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def auth_uri(self) -> str:
        return self.base + "/auth"

    @property
    def token_uri(self) -> str:
        return self.base + "/token"

    def id_token(self, audience: str) -> str:
        now = int(time.time())
        claims = {
            "iss": "https://accounts.google.com",
            "aud": audience,
            "sub": self.sub,
            "email": self.email,
            "email_verified": True,
            "name": "Test Person",
            "iat": now,
            "exp": now + 3600,
        }
        return f"{_b64({'alg': 'RS256', 'kid': 'fake', 'typ': 'JWT'})}.{_b64(claims)}.fake"

    def __enter__(self) -> FakeGoogleOAuth:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
