"""Firebase Authentication's public REST API (Identity Toolkit v1 and Secure Token), on urllib.

The same calls the Firebase SDKs make: sign up (a guest when no email is given), sign in with a
password or with a Google ID token, and trade a refresh token for a fresh ID token. Against the
Auth emulator the paths are the same, under http://<emulator>/.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

IDENTITY_TOOLKIT = "https://identitytoolkit.googleapis.com"
SECURE_TOKEN = "https://securetoken.googleapis.com"
TIMEOUT_S = 15.0

# Identity Toolkit error codes a person can act on, in words.
_MESSAGES = {
    "EMAIL_NOT_FOUND": "no account has this email",
    "INVALID_PASSWORD": "the password is wrong",
    "INVALID_LOGIN_CREDENTIALS": "the email or the password is wrong",
    "INVALID_EMAIL": "that is not an email address",
    "EMAIL_EXISTS": "an account with this email exists already: sign in instead",
    "WEAK_PASSWORD": "the password is too weak (at least 6 characters)",
    "USER_DISABLED": "this account is disabled",
    "TOKEN_EXPIRED": "the sign-in has expired",
    "INVALID_REFRESH_TOKEN": "the sign-in is no longer valid",
    "USER_NOT_FOUND": "the account no longer exists",
    "OPERATION_NOT_ALLOWED": "this way of signing in is not enabled for the project",
    "TOO_MANY_ATTEMPTS_TRY_LATER": "too many attempts: try again later",
}


class AuthError(Exception):
    """Signing in failed."""


class AuthRejected(AuthError):
    """The identity service said no (wrong password, revoked sign-in): retrying cannot help."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class AuthUnreachable(AuthError):
    """The identity service could not be reached or failed; trying again later may work."""


@dataclass(frozen=True)
class Tokens:
    id_token: str
    refresh_token: str
    expires_at: float  # epoch seconds
    uid: str
    email: str | None = None


@dataclass(frozen=True)
class Endpoints:
    api_key: str
    identity_toolkit: str = IDENTITY_TOOLKIT
    secure_token: str = SECURE_TOKEN

    @classmethod
    def for_emulator(cls, emulator_url: str, api_key: str) -> Endpoints:
        base = emulator_url.rstrip("/")
        if "://" not in base:
            base = f"http://{base}"
        return cls(
            api_key=api_key or "emulator",
            identity_toolkit=f"{base}/identitytoolkit.googleapis.com",
            secure_token=f"{base}/securetoken.googleapis.com",
        )


class IdentityToolkit:
    def __init__(self, endpoints: Endpoints, *, timeout_s: float = TIMEOUT_S) -> None:
        self.endpoints = endpoints
        self._timeout = timeout_s

    def sign_up(self, email: str | None = None, password: str | None = None) -> Tokens:
        """A new account; with no email, a guest (anonymous) one."""
        body: dict[str, Any] = {"returnSecureToken": True}
        if email is not None:
            body |= {"email": email, "password": password or ""}
        return self._tokens(self._account("signUp", body))

    def sign_in_with_password(self, email: str, password: str) -> Tokens:
        body = {"email": email, "password": password, "returnSecureToken": True}
        return self._tokens(self._account("signInWithPassword", body))

    def sign_in_with_idp(self, post_body: str, request_uri: str) -> Tokens:
        """Sign in with another provider's credential, e.g. `id_token=...&providerId=google.com`."""
        body = {
            "postBody": post_body,
            "requestUri": request_uri,
            "returnIdpCredential": True,
            "returnSecureToken": True,
        }
        return self._tokens(self._account("signInWithIdp", body))

    def refresh(self, refresh_token: str) -> Tokens:
        url = f"{self.endpoints.secure_token}/v1/token?" + self._key()
        form = urllib.parse.urlencode(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}
        ).encode()
        answer = self._post(url, form, "application/x-www-form-urlencoded")
        try:
            id_token = str(answer["id_token"])
            return Tokens(
                id_token=id_token,
                refresh_token=str(answer.get("refresh_token") or refresh_token),
                expires_at=_expires_at(answer.get("expires_in"), id_token),
                uid=str(answer.get("user_id") or claims(id_token).get("user_id", "")),
                email=_str_or_none(claims(id_token).get("email")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AuthUnreachable(f"unexpected answer from the token service: {exc}") from None

    # ---------------------------------------------------------------- plumbing

    def _key(self) -> str:
        return urllib.parse.urlencode({"key": self.endpoints.api_key})

    def _account(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.endpoints.identity_toolkit}/v1/accounts:{method}?" + self._key()
        return self._post(url, json.dumps(body).encode(), "application/json")

    def _tokens(self, answer: dict[str, Any]) -> Tokens:
        try:
            id_token = str(answer["idToken"])
            return Tokens(
                id_token=id_token,
                refresh_token=str(answer["refreshToken"]),
                expires_at=_expires_at(answer.get("expiresIn"), id_token),
                uid=str(answer["localId"]),
                email=_str_or_none(answer.get("email")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AuthUnreachable(f"unexpected answer from the sign-in service: {exc}") from None

    def _post(self, url: str, data: bytes, content_type: str) -> dict[str, Any]:
        request = urllib.request.Request(
            url, data=data, headers={"Content-Type": content_type}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise _http_error(exc) from None
        except (OSError, ValueError) as exc:
            raise AuthUnreachable(f"cannot reach {_origin(url)}: {exc}") from None
        if not isinstance(answer, dict):
            raise AuthUnreachable(f"{_origin(url)} answered something unexpected")
        return answer


def _http_error(exc: urllib.error.HTTPError) -> AuthError:
    try:
        error = json.loads(exc.read()).get("error", {})
        raw = str(error.get("message", ""))
    except (OSError, ValueError, AttributeError):
        raw = ""
    if exc.code >= 500 or not raw:
        return AuthUnreachable(f"the sign-in service failed (HTTP {exc.code}) {raw}".strip())
    # "WEAK_PASSWORD : Password should be at least 6 characters"
    code = raw.split(":", 1)[0].strip()
    return AuthRejected(code, _MESSAGES.get(code, raw.lower().replace("_", " ")))


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def claims(jwt: str) -> dict[str, Any]:
    """A JWT's payload, NOT verified: only for reading our own token's expiry and names.

    The edge verifies tokens; the client only needs to know when to refresh its own.
    """
    try:
        payload = jwt.split(".")[1]
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _expires_at(expires_in: object, id_token: str) -> float:
    exp = claims(id_token).get("exp")
    if isinstance(exp, int | float):
        return float(exp)
    return time.time() + float(str(expires_in or 3600))
