"""`deploychat login`, `logout`, `whoami` and `sessions`: the command line's account commands.

Each takes the parsed arguments and the settings, prints for a person, and returns an exit code:
0 done; 1 refused (wrong password, sign-in no longer valid); 2 usage; 3 unreachable.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import webbrowser
from collections.abc import Callable
from datetime import UTC, datetime

from .credentials import CredentialStore
from .edge_http import (
    EdgeAddress,
    EdgeError,
    EdgeUnauthorized,
    SessionSummary,
    list_sessions,
)
from .google_oauth import GoogleClient, firebase_post_body, google_id_token
from .identity import AuthRejected, AuthUnreachable, Tokens, claims
from .settings import ClientSettings
from .signin import EdgeIdentity, SignIn

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


def _err(text: str) -> None:
    print(f"deploychat: {text}", file=sys.stderr)


def _who(login_email: str | None, uid: str, provider: str) -> str:
    if provider == "anonymous":
        return f"a guest ({uid})"
    return f"{login_email or 'no email'} ({uid}, {provider})"


def guarded(command: Callable[[], int]) -> int:
    """The account commands' errors, as a sentence and an exit code."""
    try:
        return command()
    except AuthRejected as exc:
        _err(str(exc))
        return EXIT_REFUSED
    except (AuthUnreachable, EdgeError) as exc:
        _err(str(exc))
        return EXIT_UNREACHABLE


# ---------------------------------------------------------------- login


def login(args: argparse.Namespace, settings: ClientSettings, signin: SignIn) -> int:
    edge = EdgeAddress.parse(args.url)
    return guarded(lambda: _login(args, settings, signin, edge))


def _login(
    args: argparse.Namespace, settings: ClientSettings, signin: SignIn, edge: EdgeAddress
) -> int:
    config = signin.config(edge)
    if config is None or config.auth.mode == "none":
        print(f"{edge.http_url} runs without sign-in: there is nothing to sign in to.")
        return EXIT_OK
    auth = config.auth
    toolkit = signin.toolkit_for(auth)
    tokens: Tokens
    if args.google:
        client_id = args.client_id or settings.google_client_id
        if not client_id:
            _err("Google sign-in needs an OAuth client id (--client-id, or the setting")
            _err("DEPLOYCHAT_GOOGLE_CLIENT_ID): a Desktop app client of the project")
            return EXIT_USAGE
        client = GoogleClient(
            client_id=client_id,
            client_secret=settings.google_client_secret,
            auth_uri=settings.google_auth_uri,
            token_uri=settings.google_token_uri,
        )

        def announce(url: str) -> None:
            print("Sign in with Google in the browser. If none opened, open this link:", flush=True)
            print(f"  {url}", flush=True)

        open_browser = (lambda url: None) if args.no_browser else webbrowser.open
        google_token, redirect_uri = google_id_token(
            client, open_browser, timeout_s=args.timeout, announce=announce
        )
        tokens = toolkit.sign_in_with_idp(firebase_post_body(google_token), redirect_uri)
        provider = "google.com"
    else:
        email = args.email or input("Email: ").strip()
        if not email:
            _err("an email is needed (or --google)")
            return EXIT_USAGE
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("Password: ")
        if args.sign_up:
            tokens = toolkit.sign_up(email, password)
        else:
            tokens = toolkit.sign_in_with_password(email, password)
        provider = "password"
    signin.keep(edge, tokens, provider, auth)
    action = "signed up and in" if args.sign_up and not args.google else "signed in"
    print(f"{action} as {_who(tokens.email, tokens.uid, provider)} at {edge.http_url}")
    print(f"kept in {signin.store.path}")
    return EXIT_OK


# ---------------------------------------------------------------- logout, whoami


def logout(args: argparse.Namespace, store: CredentialStore) -> int:
    edge = EdgeAddress.parse(args.url)
    if store.remove(edge.http_url):
        print(f"signed out of {edge.http_url}")
    else:
        print(f"not signed in at {edge.http_url}")
    return EXIT_OK


def whoami(args: argparse.Namespace, settings: ClientSettings, signin: SignIn) -> int:
    edge = EdgeAddress.parse(args.url)
    if args.token:
        payload = claims(args.token)
        firebase = payload.get("firebase")
        provider = firebase.get("sign_in_provider", "?") if isinstance(firebase, dict) else "?"
        uid = str(payload.get("user_id") or payload.get("sub") or "?")
        print(f"the given token: {_who(payload.get('email'), uid, str(provider))} (unverified)")
        return EXIT_OK
    login = signin.store.get(edge.http_url)
    if login is None:
        print(f"not signed in at {edge.http_url}")
        if edge.http_url.startswith("http://"):
            print("(against a local stack the CLI signs in as a guest when it connects)")
        return EXIT_REFUSED

    def check() -> int:
        # A refresh proves the kept sign-in still works, and says if it does not.
        identity = signin.identity(edge)
        kept = identity.login or login
        print(f"{_who(kept.email, kept.uid, kept.provider)} at {edge.http_url}")
        if identity.notice:
            print(identity.notice)
        return EXIT_OK

    return guarded(check)


# ---------------------------------------------------------------- sessions


def sessions(args: argparse.Namespace, settings: ClientSettings, signin: SignIn) -> int:
    edge = EdgeAddress.parse(args.url)

    def show() -> int:
        found = fetch_sessions(edge, args.token, signin)
        if not found:
            print("no conversations yet")
            return EXIT_OK
        width = max(len(s.session_id) for s in found)
        for summary in found:
            when = _when(summary.updated_at or summary.created_at)
            title = (summary.title or "(untitled)").replace("\n", " ")
            print(f"{summary.session_id:<{width}}  {when:<16}  {title}")
        print("\ncontinue one: deploychat chat --session ID   (the newest: deploychat chat --last)")
        return EXIT_OK

    return guarded(show)


def fetch_sessions(edge: EdgeAddress, token: str | None, signin: SignIn) -> list[SessionSummary]:
    source = EdgeIdentity(signin, edge, announce=lambda text: print(f"[{text}]", file=sys.stderr))
    id_token = token or source.fresh_token()
    try:
        return list_sessions(edge, id_token)
    except EdgeUnauthorized:
        if token:
            raise AuthRejected("unauthorized", "the edge refused the given token") from None
        return list_sessions(edge, source.fresh_token(force=True))


def _when(value: str | float | None) -> str:
    if value is None:
        return "-"
    try:
        if isinstance(value, int | float):
            # Seconds, or milliseconds (as JavaScript counts them).
            moment = datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return str(value)[:16]
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")
