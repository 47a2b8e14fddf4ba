"""Who is connecting: Firebase Authentication / Identity Platform ID tokens, verified here.

firebase-admin checks the signature against Google's public certificates, the issuer
(`https://securetoken.google.com/<project>`), the audience (the project) and the expiry. With
`FIREBASE_AUTH_EMULATOR_HOST` set it accepts the emulator's unsigned tokens instead: the edge
trusts them only when its settings say it runs against the emulator (never on Cloud Run), and
refuses them everywhere else, since their `alg` is `none`.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from deploychat.errors import TransientError

from .settings import EdgeSettings

log = logging.getLogger(__name__)

# The uid of everyone on a stack that runs without sign-in (auth_mode "none", local only).
LOCAL_UID = "local-user"


@dataclass(frozen=True)
class User:
    uid: str
    email: str | None = None
    email_verified: bool = False
    provider: str | None = None

    @property
    def label(self) -> str:
        return self.email or ("guest" if self.provider == "anonymous" else self.uid)


class Unauthorized(Exception):
    """The token is missing, malformed, forged, expired or for another project."""


class TokenVerifier:
    def __init__(self, settings: EdgeSettings, app: Any = None) -> None:
        self._settings = settings
        self._app = app
        self._lock = threading.Lock()

    @property
    def app(self) -> Any:
        with self._lock:
            if self._app is None:
                import firebase_admin

                self._app = firebase_admin.initialize_app(
                    # No credential is needed to verify tokens: only Google's public keys.
                    credential=_no_credential(),
                    options={"projectId": self._settings.project_id},
                    name=f"deploychat-edge-{uuid.uuid4().hex[:8]}",
                )
            return self._app

    def verify(self, token: str | None) -> User:
        """The user the token names, or Unauthorized; TransientError if keys can't be fetched."""
        if self._settings.auth_mode == "none":
            return User(uid=LOCAL_UID, provider="none")
        if not token or not isinstance(token, str) or len(token) > 8192:
            raise Unauthorized("sign in first: init needs an ID token")
        from firebase_admin import auth

        # firebase-admin decides from the environment whether tokens are the emulator's; the
        # edge's own setting must agree, or an emulator token could pass where it must not.
        if bool(os.environ.get("FIREBASE_AUTH_EMULATOR_HOST")) != bool(
            self._settings.auth_emulator_host
        ):
            raise TransientError("the edge's Auth emulator setting and environment disagree")
        try:
            claims: dict[str, Any] = auth.verify_id_token(token, app=self.app)
        except auth.CertificateFetchError as exc:
            log.warning("could not fetch the token signing keys: %s", exc)
            raise TransientError("sign-in could not be checked just now; reconnect") from exc
        except (ValueError, auth.InvalidIdTokenError) as exc:
            # ExpiredIdTokenError is an InvalidIdTokenError.
            raise Unauthorized(_reason(exc)) from None
        firebase = claims.get("firebase") or {}
        email = claims.get("email")
        return User(
            uid=str(claims["uid"]),
            email=email if isinstance(email, str) else None,
            email_verified=bool(claims.get("email_verified")),
            provider=str(firebase.get("sign_in_provider") or "") or None,
        )


def _reason(exc: Exception) -> str:
    text = str(exc)
    if "expired" in text.lower():
        return "the ID token has expired; sign in again"
    return "the ID token is not valid for this service"


def _no_credential() -> Any:
    """firebase-admin wants a credential object; verifying tokens never uses it."""
    from firebase_admin import credentials
    from google.auth.credentials import AnonymousCredentials

    class NoCredential(credentials.Base):  # type: ignore[misc]
        def get_credential(self) -> Any:
            return AnonymousCredentials()  # type: ignore[no-untyped-call]

    return NoCredential()
