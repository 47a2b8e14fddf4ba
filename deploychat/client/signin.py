"""Who the client is to an edge: a token given to it, a kept sign-in it refreshes, or a guest.

The edge's `/api/config` says how to sign in. Locally (an Auth emulator is named) the client
signs up as a guest on its own, like the page, and keeps that sign-in for the edge. Against a
real identity provider it needs a sign-in made by `deploychat login`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from .credentials import CredentialStore, StoredLogin
from .edge_http import AuthConfig, EdgeAddress, EdgeConfig, EdgeError, fetch_config
from .identity import (
    AuthRejected,
    AuthUnreachable,
    Endpoints,
    IdentityToolkit,
    Tokens,
    claims,
)

log = logging.getLogger(__name__)

# Firebase ID tokens live an hour; like the Firebase SDKs, refresh five minutes before the end
# so a token is never sent that expires on its way.
REFRESH_MARGIN_S = 300.0


class SignInRequired(AuthRejected):
    """The edge needs a signed-in user and none is kept: run `deploychat login`."""

    def __init__(self, message: str) -> None:
        super().__init__("sign_in_required", message)


class RefreshingToken:
    """An ID token that is refreshed from its refresh token shortly before it expires.

    `fresh_token()` blocks on the network when a refresh is due; the async client calls it in
    a thread. Thread-safe: concurrent callers share one refresh.
    """

    def __init__(
        self,
        toolkit: IdentityToolkit,
        refresh_token: str,
        *,
        id_token: str | None = None,
        expires_at: float = 0.0,
        on_refresh: Callable[[Tokens], None] | None = None,
        margin_s: float = REFRESH_MARGIN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._toolkit = toolkit
        self._refresh_token = refresh_token
        self._id_token = id_token
        self._expires_at = expires_at
        self._on_refresh = on_refresh
        self._margin = margin_s
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def expires_at(self) -> float:
        return self._expires_at

    def fresh_token(self, force: bool = False) -> str:
        """An ID token good for at least the margin; raises AuthRejected / AuthUnreachable."""
        with self._lock:
            due = self._expires_at - self._clock() <= self._margin
            if self._id_token is not None and not due and not force:
                return self._id_token
            tokens = self._toolkit.refresh(self._refresh_token)
            self._id_token = tokens.id_token
            self._refresh_token = tokens.refresh_token
            self._expires_at = tokens.expires_at
            if self._on_refresh is not None:
                try:
                    self._on_refresh(tokens)
                except OSError as exc:  # keeping it is a convenience; the token still works
                    log.warning("could not keep the refreshed sign-in: %s", exc)
            return tokens.id_token


@dataclass(frozen=True)
class Identity:
    """How to authenticate to one edge."""

    # A token passed straight through (--token): never refreshed.
    token: str | None = None
    source: RefreshingToken | None = None
    login: StoredLogin | None = None
    # Something to tell the person (a new guest sign-in, a lost one).
    notice: str | None = None

    def current_token(self) -> str | None:
        if self.token is not None:
            return self.token
        return self.source.fresh_token() if self.source is not None else None


def endpoints_for(auth: AuthConfig) -> Endpoints:
    if auth.emulator_url:
        return Endpoints.for_emulator(auth.emulator_url, auth.api_key or "")
    if not auth.api_key:
        raise SignInRequired("the edge's /api/config names no api_key: it cannot be signed in to")
    return Endpoints(api_key=auth.api_key)


def stored_login(tokens: Tokens, provider: str, auth: AuthConfig) -> StoredLogin:
    return StoredLogin(
        refresh_token=tokens.refresh_token,
        uid=tokens.uid,
        provider=provider,
        email=tokens.email,
        api_key=auth.api_key or "",
        emulator_url=auth.emulator_url,
        id_token=tokens.id_token,
        expires_at=tokens.expires_at,
    )


def provider_of(tokens: Tokens) -> str:
    firebase = claims(tokens.id_token).get("firebase")
    provider = firebase.get("sign_in_provider") if isinstance(firebase, dict) else None
    return provider if isinstance(provider, str) else "password"


class SignIn:
    """Resolves and keeps the sign-in for edges, in one credential store."""

    def __init__(
        self,
        store: CredentialStore,
        *,
        fetch: Callable[[EdgeAddress], EdgeConfig | None] = fetch_config,
        toolkit: Callable[[Endpoints], IdentityToolkit] = IdentityToolkit,
    ) -> None:
        self.store = store
        self._fetch = fetch
        self._toolkit = toolkit

    def config(self, edge: EdgeAddress) -> EdgeConfig | None:
        return self._fetch(edge)

    def toolkit_for(self, auth: AuthConfig) -> IdentityToolkit:
        return self._toolkit(endpoints_for(auth))

    def identity(self, edge: EdgeAddress, token: str | None = None) -> Identity:
        if token:
            return Identity(token=token)
        config = self._fetch(edge)
        if config is None or config.auth.mode == "none":
            return Identity()  # a local edge without identity: nothing to send
        auth = config.auth
        login = self.store.get(edge.http_url)
        if login is not None and login.emulator_url != auth.emulator_url:
            # Kept for another identity service (the stack moved): it cannot work here.
            login = None
        if login is not None:
            source = self._source(edge, auth, login)
            try:
                source.fresh_token()
                return Identity(source=source, login=self.store.get(edge.http_url) or login)
            except AuthRejected as exc:
                if not (login.is_guest and auth.emulator_url):
                    raise SignInRequired(
                        f"your sign-in for {edge.http_url} is no longer valid ({exc}): "
                        "run `deploychat login`"
                    ) from None
                lost = "your guest sign-in is gone (the local emulator was reset?); "
                return self._new_guest(edge, auth, lost)
        if auth.emulator_url:
            return self._new_guest(edge, auth, "")
        raise SignInRequired(f"{edge.http_url} needs you to sign in: run `deploychat login`")

    def keep(self, edge: EdgeAddress, tokens: Tokens, provider: str, auth: AuthConfig) -> None:
        self.store.put(edge.http_url, stored_login(tokens, provider, auth))

    def _new_guest(self, edge: EdgeAddress, auth: AuthConfig, prefix: str) -> Identity:
        tokens = self.toolkit_for(auth).sign_up()
        self.keep(edge, tokens, "anonymous", auth)
        login = self.store.get(edge.http_url) or stored_login(tokens, "anonymous", auth)
        source = self._source(edge, auth, login)
        notice = f"{prefix}signed in as a guest ({tokens.uid}) on the local emulator"
        return Identity(source=source, login=login, notice=notice)

    def _source(self, edge: EdgeAddress, auth: AuthConfig, login: StoredLogin) -> RefreshingToken:
        def keep(tokens: Tokens) -> None:
            kept = self.store.get(edge.http_url) or login
            self.store.put(
                edge.http_url,
                replace(
                    kept,
                    refresh_token=tokens.refresh_token,
                    id_token=tokens.id_token,
                    expires_at=tokens.expires_at,
                ),
            )

        return RefreshingToken(
            self.toolkit_for(auth),
            login.refresh_token,
            id_token=login.id_token,
            expires_at=login.expires_at,
            on_refresh=keep,
        )


class EdgeIdentity:
    """The TokenSource the command line hands its client: it works out how to sign in to the
    edge on first use (so an edge that is down is retried like the socket), then keeps a
    fresh token. A sign-in that stopped working is worked out again on the next call."""

    def __init__(
        self,
        signin: SignIn,
        edge: EdgeAddress,
        *,
        announce: Callable[[str], None] = lambda text: None,
    ) -> None:
        self._signin = signin
        self._edge = edge
        self._announce = announce
        self._identity: Identity | None = None
        self._lock = threading.Lock()

    def identity(self) -> Identity:
        with self._lock:
            if self._identity is None:
                try:
                    self._identity = self._signin.identity(self._edge)
                except EdgeError as exc:
                    raise AuthUnreachable(str(exc)) from None
                if self._identity.notice:
                    self._announce(self._identity.notice)
            return self._identity

    def fresh_token(self, force: bool = False) -> str | None:
        identity = self.identity()
        if identity.source is None:
            return identity.token
        try:
            return identity.source.fresh_token(force)
        except AuthRejected:
            with self._lock:
                self._identity = None
            raise
