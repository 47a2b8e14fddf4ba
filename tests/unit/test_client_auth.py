"""The client's sign-in decisions, without a network: where sign-ins are kept and how, when a
token is refreshed, what the CLI does for each answer of /api/config, the PKCE pieces."""

from __future__ import annotations

import email.message
import io
import json
import os
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploychat.client.credentials import CredentialStore, StoredLogin, config_dir
from deploychat.client.edge_http import AuthConfig, EdgeAddress, EdgeConfig
from deploychat.client.google_oauth import (
    GoogleClient,
    LoopbackListener,
    Pkce,
    authorization_url,
    challenge_for,
)
from deploychat.client.identity import AuthRejected, AuthUnreachable, Endpoints, Tokens, _http_error
from deploychat.client.signin import EdgeIdentity, RefreshingToken, SignIn, SignInRequired

EDGE = EdgeAddress.parse("ws://localhost:8000/ws/chat")
EMULATOR = "http://127.0.0.1:9099"


# ---------------------------------------------------------------- where sign-ins are kept


def test_the_config_folder_follows_xdg() -> None:
    assert config_dir({"XDG_CONFIG_HOME": "/x/conf"}) == Path("/x/conf/deploychat")
    home = Path.home()
    assert config_dir({}) == home / ".config" / "deploychat"
    # A relative XDG_CONFIG_HOME is invalid (the spec): ignored.
    assert config_dir({"XDG_CONFIG_HOME": "rel"}) == home / ".config" / "deploychat"


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask: the store must not rely on the user's to stay private."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_the_credentials_file_is_private_from_the_start(tmp_path: Path, open_umask: None) -> None:
    store = CredentialStore(tmp_path / "conf" / "deploychat" / "credentials.json")
    login = StoredLogin(refresh_token="r1", uid="u1", provider="password", email="a@example.com")
    store.put("http://localhost:8000", login)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    # No temporary file is left beside it.
    assert [p.name for p in store.path.parent.iterdir()] == ["credentials.json"]
    store.put("https://chat.example.com", StoredLogin(refresh_token="r2", uid="u2", provider="x"))
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.get("http://localhost:8000") == login
    assert store.remove("http://localhost:8000") is True
    assert store.get("http://localhost:8000") is None
    assert store.get("https://chat.example.com") is not None
    assert store.remove("http://localhost:8000") is False


def test_an_unreadable_credentials_file_reads_as_no_sign_in(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text("{not json")
    assert CredentialStore(path).get("http://localhost:8000") is None


# ---------------------------------------------------------------- edge addresses


@pytest.mark.parametrize(
    ("given", "ws", "http"),
    [
        ("ws://localhost:8000/ws/chat", "ws://localhost:8000/ws/chat", "http://localhost:8000"),
        ("http://localhost:8000", "ws://localhost:8000/ws/chat", "http://localhost:8000"),
        ("https://chat.example.com/", "wss://chat.example.com/ws/chat", "https://chat.example.com"),
        ("wss://h.example/ws/chat", "wss://h.example/ws/chat", "https://h.example"),
        ("https://h.example/app", "wss://h.example/app/ws/chat", "https://h.example/app"),
    ],
)
def test_an_edge_is_named_by_its_socket_or_its_page(given: str, ws: str, http: str) -> None:
    edge = EdgeAddress.parse(given)
    assert (edge.ws_url, edge.http_url) == (ws, http)


@pytest.mark.parametrize("bad", ["localhost:8000", "ftp://x/", "ws://", ""])
def test_a_url_that_is_no_edge_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not an edge URL"):
        EdgeAddress.parse(bad)


def test_emulator_endpoints_put_the_api_paths_under_the_emulator() -> None:
    endpoints = Endpoints.for_emulator("127.0.0.1:9099", "k")
    assert endpoints.identity_toolkit == "http://127.0.0.1:9099/identitytoolkit.googleapis.com"
    assert endpoints.secure_token == "http://127.0.0.1:9099/securetoken.googleapis.com"


# ---------------------------------------------------------------- refreshing


class FakeToolkit:
    def __init__(self, *, refuse: bool = False) -> None:
        self.refreshes = 0
        self.sign_ups = 0
        self.refuse = refuse
        self.now = time.time()

    def refresh(self, refresh_token: str) -> Tokens:
        if self.refuse:
            raise AuthRejected("INVALID_REFRESH_TOKEN", "the sign-in is no longer valid")
        self.refreshes += 1
        return Tokens(f"id-{self.refreshes}", f"{refresh_token}+", self.now + 3600, "u1")

    def sign_up(self, email: str | None = None, password: str | None = None) -> Tokens:
        self.sign_ups += 1
        return Tokens(f"guest-id-{self.sign_ups}", f"guest-r{self.sign_ups}", self.now + 3600, "g")


def test_a_token_is_refreshed_only_within_five_minutes_of_its_expiry() -> None:
    toolkit = FakeToolkit()
    now = [toolkit.now]
    kept: list[Tokens] = []
    source = RefreshingToken(
        toolkit,  # type: ignore[arg-type]
        "r0",
        id_token="id-0",
        expires_at=toolkit.now + 3600,
        on_refresh=kept.append,
        clock=lambda: now[0],
    )
    assert source.fresh_token() == "id-0"
    now[0] += 3600 - 301
    assert source.fresh_token() == "id-0"
    now[0] += 2  # 299 s left: refreshed, not sent on the verge of expiring
    assert source.fresh_token() == "id-1"
    assert toolkit.refreshes == 1 and [t.refresh_token for t in kept] == ["r0+"]
    assert source.fresh_token(force=True) == "id-2"
    assert kept[-1].refresh_token == "r0++"  # the newest refresh token is used and kept


# ---------------------------------------------------------------- what /api/config leads to


def firebase(emulator: str | None, api_key: str | None = "key") -> EdgeConfig:
    return EdgeConfig(
        auth=AuthConfig(mode="firebase", api_key=api_key, project_id="p", emulator_url=emulator)
    )


def signin_for(
    tmp_path: Path, config: EdgeConfig | None, toolkit: FakeToolkit
) -> tuple[SignIn, list[Endpoints]]:
    used: list[Endpoints] = []

    def make(endpoints: Endpoints) -> FakeToolkit:
        used.append(endpoints)
        return toolkit

    store = CredentialStore(tmp_path / "credentials.json")
    return SignIn(store, fetch=lambda edge: config, toolkit=make), used  # type: ignore[arg-type]


def test_an_edge_without_identity_gets_no_token(tmp_path: Path) -> None:
    none = EdgeConfig(auth=AuthConfig(mode="none"))
    for config in (none, None):
        signin, _ = signin_for(tmp_path, config, FakeToolkit())
        identity = signin.identity(EDGE)
        assert identity.current_token() is None and identity.login is None


def test_locally_a_guest_is_signed_up_once_and_kept_for_the_edge(tmp_path: Path) -> None:
    toolkit = FakeToolkit()
    signin, used = signin_for(tmp_path, firebase(EMULATOR), toolkit)
    first = signin.identity(EDGE)
    assert first.notice is not None and "guest" in first.notice
    assert first.current_token() == "guest-id-1"
    assert used[0].identity_toolkit == f"{EMULATOR}/identitytoolkit.googleapis.com"
    kept = signin.store.get(EDGE.http_url)
    assert kept is not None and kept.is_guest and kept.emulator_url == EMULATOR
    again = signin.identity(EDGE)  # the next run: the same guest, no new account
    assert toolkit.sign_ups == 1 and again.notice is None
    assert again.current_token() == "guest-id-1"


def test_a_guest_whose_emulator_was_reset_becomes_a_new_guest_and_is_told(tmp_path: Path) -> None:
    toolkit = FakeToolkit()
    signin, _ = signin_for(tmp_path, firebase(EMULATOR), toolkit)
    signin.store.put(
        EDGE.http_url,
        StoredLogin(refresh_token="old", uid="g0", provider="anonymous", emulator_url=EMULATOR),
    )
    toolkit.refuse = True
    identity = signin.identity(EDGE)
    assert identity.notice is not None and "guest sign-in is gone" in identity.notice
    assert toolkit.sign_ups == 1


def test_without_an_emulator_and_without_a_login_the_cli_says_to_log_in(tmp_path: Path) -> None:
    signin, _ = signin_for(tmp_path, firebase(None), FakeToolkit())
    with pytest.raises(SignInRequired, match="deploychat login"):
        signin.identity(EDGE)
    # A kept sign-in that stopped working says the same; it never turns into a guest.
    signin.store.put(
        EDGE.http_url, StoredLogin(refresh_token="r", uid="u", provider="password", api_key="key")
    )
    toolkit = FakeToolkit(refuse=True)
    signin, _ = signin_for(tmp_path, firebase(None), toolkit)
    with pytest.raises(SignInRequired, match="deploychat login"):
        signin.identity(EDGE)
    assert toolkit.sign_ups == 0


def test_a_sign_in_kept_for_another_emulator_is_not_used(tmp_path: Path) -> None:
    toolkit = FakeToolkit()
    signin, _ = signin_for(tmp_path, firebase(EMULATOR), toolkit)
    signin.store.put(
        EDGE.http_url,
        StoredLogin(refresh_token="x", uid="g0", provider="anonymous", emulator_url="http://o:1"),
    )
    assert signin.identity(EDGE).current_token() == "guest-id-1"


def test_the_clients_token_source_works_the_sign_in_out_again_after_a_refusal(
    tmp_path: Path,
) -> None:
    toolkit = FakeToolkit()
    signin, _ = signin_for(tmp_path, firebase(EMULATOR), toolkit)
    told: list[str] = []
    source = EdgeIdentity(signin, EDGE, announce=told.append)
    assert source.fresh_token() == "guest-id-1"
    assert len(told) == 1
    toolkit.refuse = True
    with pytest.raises(AuthRejected):
        source.fresh_token(force=True)
    toolkit.refuse = False
    assert source.fresh_token() == "guest-id-1"  # worked out again: the kept guest is fine


# ---------------------------------------------------------------- Google, up to the redirect


def test_pkce_matches_rfc_7636s_example() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert challenge_for(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    pkce = Pkce.new()
    assert 43 <= len(pkce.verifier) <= 128 and pkce.challenge == challenge_for(pkce.verifier)


def test_the_authorization_request_asks_for_a_code_with_pkce_and_state() -> None:
    client = GoogleClient(client_id="cid.apps.googleusercontent.com")
    pkce = Pkce.new()
    url = authorization_url(client, "http://127.0.0.1:5555/", pkce, "st4te")
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == client.auth_uri
    assert query == {
        "client_id": "cid.apps.googleusercontent.com",
        "redirect_uri": "http://127.0.0.1:5555/",
        "response_type": "code",
        "scope": "openid email profile",
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        "state": "st4te",
        "prompt": "select_account",
    }


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_loopback_listener_takes_the_code_only_with_the_right_state() -> None:
    with LoopbackListener("good-state") as listener:
        assert listener.redirect_uri.startswith("http://127.0.0.1:")
        assert get(listener.redirect_uri + "favicon.ico") == 404  # browsers ask; ignored
        assert get(listener.redirect_uri + "?code=c0de&state=good-state") == 200
        assert listener.wait(5) == "c0de"
    with LoopbackListener("good-state") as listener:
        assert get(listener.redirect_uri + "?code=stolen&state=other") == 400
        with pytest.raises(AuthRejected, match="did not match"):
            listener.wait(5)
    with LoopbackListener("s") as listener:
        assert get(listener.redirect_uri + "?error=access_denied&state=s") == 400
        with pytest.raises(AuthRejected, match="access_denied"):
            listener.wait(5)


def test_no_answer_from_the_browser_times_out_clearly() -> None:
    with LoopbackListener("s") as listener, pytest.raises(AuthRejected, match="no answer"):
        listener.wait(0.05)
    assert threading.active_count() >= 1


# ---------------------------------------------------------------- the service's answers


def http_error(status: int, message: str) -> urllib.error.HTTPError:
    body = json.dumps({"error": {"code": status, "message": message}}).encode()
    return urllib.error.HTTPError(
        "http://x/", status, "error", email.message.Message(), io.BytesIO(body)
    )


def test_identity_toolkit_refusals_read_as_sentences_and_outages_as_retryable() -> None:
    wrong = _http_error(http_error(400, "INVALID_LOGIN_CREDENTIALS"))
    assert isinstance(wrong, AuthRejected) and "wrong" in str(wrong)
    weak = _http_error(http_error(400, "WEAK_PASSWORD : Password should be at least 6 characters"))
    assert isinstance(weak, AuthRejected) and weak.code == "WEAK_PASSWORD"
    unknown = _http_error(http_error(400, "SOMETHING_NEW"))
    assert isinstance(unknown, AuthRejected) and str(unknown) == "something new"
    assert isinstance(_http_error(http_error(503, "BACKEND_ERROR")), AuthUnreachable)
