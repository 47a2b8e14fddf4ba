"""The CLI's sign-in as a user meets it, against the real stack and its Auth emulator: a guest
on its own, `login` / `whoami` / `sessions` / `logout`, `--token`, Google's loopback flow
(against a local fake of Google's OAuth endpoints), a kept session that is gone, and Markdown
on a terminal."""

from __future__ import annotations

import http.server
import json
import os
import pty
import re
import stat
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.integration.test_cli import ROOT, deploychat
from tests.support.fake_gemini import FakeGemini, Reply, Script
from tests.support.fake_google_oauth import FakeGoogleOAuth
from tests.support.identity import sign_up_email

PASSWORD = "correct-horse-1"


@pytest.fixture(autouse=True)
def config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's CLI keeps its sign-ins in a folder of its own, never the user's."""
    folder = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    for name in ("DEPLOYCHAT_URL", "DEPLOYCHAT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return folder


def edge_origin(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.config.edge_port}"


def session_of(result: subprocess.CompletedProcess[str]) -> str:
    found = re.search(r"\[session ([A-Za-z0-9_-]+)\]", result.stderr)
    assert found, result.stderr
    return found.group(1)


def kept(folder: Path) -> dict[str, dict[str, object]]:
    edges: dict[str, dict[str, object]] = json.loads(
        (folder / "deploychat" / "credentials.json").read_text()
    )["edges"]
    return edges


def test_locally_the_cli_signs_in_as_a_guest_on_its_own_and_keeps_it_private(
    stack: Stack, uid: str, config_folder: Path
) -> None:
    url = stack.ws_url
    first = deploychat("send", "--url", url, f"hi [[{uid}]]")
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"Echo: hi [[{uid}]]\n"
    assert "signed in as a guest" in first.stderr
    path = config_folder / "deploychat" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    guest = kept(config_folder)[edge_origin(stack)]
    assert guest["provider"] == "anonymous" and guest["refresh_token"]

    # The next run is the same guest, with no new sign-up, and sees its own sessions.
    again = deploychat("send", "--url", url, "--session", session_of(first), f"two [[{uid}]]")
    assert again.returncode == 0, again.stderr
    assert "signed in as a guest" not in again.stderr
    assert kept(config_folder)[edge_origin(stack)]["uid"] == guest["uid"]
    who = deploychat("whoami", "--url", url)
    assert who.returncode == 0 and f"a guest ({guest['uid']})" in who.stdout
    listed = deploychat("sessions", "--url", url)
    assert listed.returncode == 0, listed.stderr
    assert session_of(first) in listed.stdout and f"hi [[{uid}]]" in listed.stdout


def test_login_with_email_and_password_then_sessions_resume_and_logout(
    stack: Stack, uid: str, config_folder: Path
) -> None:
    url = stack.ws_url
    email = f"cli-{uid}@example.com"
    signed_up = deploychat(
        "login",
        "--url",
        url,
        "--sign-up",
        "--email",
        email,
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert signed_up.returncode == 0, signed_up.stderr
    assert f"signed up and in as {email}" in signed_up.stdout
    assert kept(config_folder)[edge_origin(stack)]["email"] == email

    first = deploychat("send", "--url", url, f"first words [[{uid}]]")
    assert first.returncode == 0, first.stderr
    assert "guest" not in first.stderr
    listed = deploychat("sessions", "--url", url)
    assert listed.returncode == 0, listed.stderr
    assert session_of(first) in listed.stdout and f"first words [[{uid}]]" in listed.stdout
    assert "deploychat chat --session" in listed.stdout
    # --last continues the newest session.
    resumed = deploychat("send", "--url", url, "--last", f"more [[{uid}]]")
    assert resumed.returncode == 0, resumed.stderr
    assert session_of(resumed) == session_of(first)

    who = deploychat("whoami", "--url", url)
    assert who.returncode == 0 and email in who.stdout
    out = deploychat("logout", "--url", url)
    assert out.returncode == 0 and "signed out" in out.stdout
    assert edge_origin(stack) not in kept(config_folder)
    assert deploychat("whoami", "--url", url).returncode == 1

    wrong = deploychat(
        "login", "--url", url, "--email", email, "--password-stdin", input="not-it\n"
    )
    assert wrong.returncode == 1
    assert "wrong" in wrong.stderr
    right = deploychat("login", "--url", url, "--email", email, "--password-stdin", input=PASSWORD)
    assert right.returncode == 0 and f"signed in as {email}" in right.stdout


def test_a_token_passes_straight_through_and_nothing_is_kept(
    stack: Stack, uid: str, config_folder: Path
) -> None:
    user = sign_up_email()
    env = {"DEPLOYCHAT_URL": stack.ws_url, "DEPLOYCHAT_TOKEN": user.id_token}
    sent = deploychat("send", f"scripted [[{uid}]]", env=env)
    assert sent.returncode == 0, sent.stderr
    listed = deploychat("sessions", env=env)
    assert session_of(sent) in listed.stdout
    # The same with the flags instead of the environment.
    listed = deploychat("sessions", "--url", stack.ws_url, "--token", user.id_token)
    assert session_of(sent) in listed.stdout
    assert not (config_folder / "deploychat" / "credentials.json").exists()
    refused = deploychat("send", "--url", stack.ws_url, "--token", "forged", "--attempts", "1", "x")
    assert refused.returncode == 3 and "refused" in refused.stderr


def test_a_kept_session_that_is_gone_is_said_so_and_a_new_one_starts(
    stack: Stack, uid: str
) -> None:
    result = deploychat("send", "--url", stack.ws_url, "--session", f"gone-{uid}", f"hi [[{uid}]]")
    assert result.returncode == 0, result.stderr
    assert f"session gone-{uid} is not available any more" in result.stderr
    assert result.stdout == f"Echo: hi [[{uid}]]\n"
    assert session_of(result) != f"gone-{uid}"


def test_login_with_google_through_the_loopback_flow(
    stack: Stack, uid: str, config_folder: Path
) -> None:
    email = f"google-{uid}@example.com"
    with FakeGoogleOAuth(email) as google:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deploychat.cli",
                "login",
                "--google",
                "--no-browser",
                "--url",
                stack.ws_url,
                "--client-id",
                "cli-test.apps.googleusercontent.com",
                "--timeout",
                "60",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={
                **os.environ,
                "DEPLOYCHAT_GOOGLE_AUTH_URI": google.auth_uri,
                "DEPLOYCHAT_GOOGLE_TOKEN_URI": google.token_uri,
            },
        )
        try:
            assert proc.stdout is not None
            lines: list[str] = []
            # The person's browser: it opens the printed link, and Google redirects it to
            # the CLI's loopback listener.
            for line in proc.stdout:
                lines.append(line)
                if line.strip().startswith(google.auth_uri):
                    with urllib.request.urlopen(line.strip(), timeout=30) as page:
                        assert b"Signed in" in page.read()
                    break
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert f"signed in as {email}" in "".join(lines) + out
    # PKCE: the verifier went to the token endpoint, never in the browser's link.
    verifier = google.exchanges[0]["code_verifier"]
    assert verifier not in "".join(lines)
    login = kept(config_folder)[edge_origin(stack)]
    assert login["provider"] == "google.com" and login["email"] == email
    sent = deploychat("send", "--url", stack.ws_url, f"as google [[{uid}]]")
    assert sent.returncode == 0, sent.stderr


def test_replies_are_markdown_on_a_terminal_and_plain_text_when_piped(
    stack: Stack, fake_gemini: FakeGemini, uid: str
) -> None:
    reply = Reply(chunks=["Use **gunicorn**", " and `PORT`.\n\n- one\n- two"], delay_s=0.05)
    fake_gemini.script(uid, Script(replies=[reply, reply]))
    piped = deploychat("send", "--url", stack.ws_url, f"md [[{uid}]]")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "Use **gunicorn** and `PORT`.\n\n- one\n- two\n"

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deploychat.cli",
            "send",
            "--url",
            stack.ws_url,
            "--session",
            session_of(piped),
            f"md again [[{uid}]]",
        ],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "80", "LINES": "24", "TERM": "xterm-256color"},
    )
    os.close(follower)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=5)
    os.close(leader)
    shown = b"".join(chunks).decode(errors="replace")
    assert "\x1b[" in shown  # styled
    assert "gunicorn" in shown and "**" not in shown and "`PORT`" not in shown
    assert "•" in shown  # a rendered list


def test_against_a_deployment_without_a_login_the_cli_says_to_log_in() -> None:
    """An edge in `mode: firebase` with no emulator (as deployed): no guest, a clear sentence."""
    body = json.dumps(
        {
            "auth": {
                "mode": "firebase",
                "api_key": "AIza-public-key",
                "auth_domain": "p.firebaseapp.com",
                "project_id": "p",
                "emulator_url": None,
            },
            "agent": {"mode": "offline", "model": None},
        }
    ).encode()

    class Config(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/api/config" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Config)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = deploychat("send", "--url", url, "hello")
        listed = deploychat("sessions", "--url", url)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 3
    assert "needs you to sign in: run `deploychat login`" in result.stderr
    assert "guest" not in result.stderr
    assert listed.returncode == 1 and "deploychat login" in listed.stderr
