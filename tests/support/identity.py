"""Users for tests, signed up on the real Firebase Auth emulator through its public REST API
(the Identity Toolkit v1 surface that the Firebase SDKs and our CLI use)."""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

# The emulator accepts any API key.
API_KEY = "fake-api-key"


@dataclass(frozen=True)
class User:
    uid: str
    id_token: str
    refresh_token: str
    email: str | None = None


def _post(host: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://{host}/identitytoolkit.googleapis.com/v1/{path}?key={API_KEY}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def emulator_host() -> str:
    return os.environ["FIREBASE_AUTH_EMULATOR_HOST"]


def sign_up_guest(host: str | None = None) -> User:
    """A new anonymous user."""
    answer = _post(host or emulator_host(), "accounts:signUp", {"returnSecureToken": True})
    return User(answer["localId"], answer["idToken"], answer["refreshToken"])


def sign_up_email(
    email: str | None = None, password: str = "correct-horse-1", host: str | None = None
) -> User:
    """A new email/password user (a unique address unless one is given)."""
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    answer = _post(
        host or emulator_host(),
        "accounts:signUp",
        {"email": email, "password": password, "returnSecureToken": True},
    )
    return User(answer["localId"], answer["idToken"], answer["refreshToken"], email)


# The user a test's sockets act for unless they say otherwise: one per test (tests/conftest.py
# forgets it between tests), so every socket of a test may resume that test's sessions.
# Not thread-safe: threads that need a user sign up their own.
_current: User | None = None


def current_user() -> User:
    global _current
    if _current is None:
        _current = sign_up_guest()
    return _current


def forget_current_user() -> None:
    global _current
    _current = None
