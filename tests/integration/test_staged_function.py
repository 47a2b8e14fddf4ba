"""The staged function source works on its own, as Cloud Functions will run it.

scripts/stage_function.py stages the source; a fresh virtual environment gets only the staged
requirements.txt; functions-framework from that environment serves `handle_turn` from the staged
main.py, against the Firestore emulator and without model credentials (offline answers). Turns
arrive as Pub/Sub pushes them (a raw push body on /projects/<p>/topics/<t>) and as a CloudEvent,
and the session's events must then be in Firestore.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploychat.firestore_layout import events_ref, session_ref, turn_ref
from deploychat.turn_message import TurnRequest
from devstack.processes import free_port, http_get
from devstack.stack import Emulator, StackConfig
from tests.support.uv import uv_command

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "staged-fn-test"
TOPIC = "deploychat-test-turns"


def python_for_runtime() -> str:
    """The runtime's minor version (python312) when this machine has it, else ours."""
    candidates = sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))
    candidates += ["/usr/local/bin/python3.12", "/usr/bin/python3.12"]
    for candidate in candidates:
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout.strip() == "True":
            return candidate
    return sys.executable


@dataclass
class Deployed:
    staged: Path
    venv_python: Path
    url: str
    firestore_host: str
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def firestore_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("gcloud") is None:
        pytest.skip("needs gcloud's Firestore emulator")
    emulator = Emulator("firestore", StackConfig(log_dir=tmp_path_factory.mktemp("logs")))
    emulator.start()
    try:
        emulator.wait_ready()
        yield emulator.host
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, firestore_host: str) -> Iterator[Deployed]:
    uv = uv_command()
    if uv is None:
        pytest.skip("needs uv")
    base = tmp_path_factory.mktemp("deployed")
    staged = base / "function"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "stage_function.py"), "--out", str(staged)],
        check=True,
        cwd=ROOT,
    )
    # A fresh environment from the staged requirements alone (as the buildpack does with pip).
    venv = base / "venv"
    subprocess.run(
        [*uv, "venv", "--quiet", "--python", python_for_runtime(), str(venv)], check=True
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [*uv, "pip", "install", "--quiet", "--python", str(python), "-r", "requirements.txt"],
        cwd=staged,
        check=True,
        timeout=300,
    )
    port = free_port()
    env = {
        # Nothing from this machine's environment: no PYTHONPATH, no model keys.
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(base),
        "PYTHONUNBUFFERED": "1",
        "FUNCTION_SIGNATURE_TYPE": "cloudevent",  # what the buildpack sets at launch
        "FIRESTORE_EMULATOR_HOST": firestore_host,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "DEPLOYCHAT_PROJECT_ID": PROJECT,
        "DEPLOYCHAT_LOG_FORMAT": "json",
        "DEPLOYCHAT_PIECE_INTERVAL_MS": "0",
        "DEPLOYCHAT_OFFLINE_PIECE_DELAY_MS": "0",
        "DEPLOYCHAT_MAX_DELIVERY_ATTEMPTS": "5",
        "DEPLOYCHAT_TURN_LEASE_S": "600",
    }
    log_path = base / "function.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            str(venv / "bin" / "functions-framework"),
            "--target=handle_turn",
            "--source=main.py",
            "--host=127.0.0.1",
            f"--port={port}",
        ],
        cwd=staged,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _up(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"functions-framework did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield Deployed(staged, python, url, firestore_host, log_path)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()


def _up(url: str) -> bool:
    try:
        return http_get(url + "/", timeout=1)[0] > 0
    except OSError:
        return False


def pubsub_message(turn: TurnRequest, message_id: str) -> dict[str, Any]:
    data, attributes = turn.to_pubsub()
    return {
        "data": base64.b64encode(data).decode(),
        "attributes": attributes,
        "messageId": message_id,
        "publishTime": "2025-01-01T00:00:00Z",
        "orderingKey": turn.session_id,
    }


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def push(deployed: Deployed, turn: TurnRequest, message_id: str) -> int:
    """A Pub/Sub push request as the subscription sends it (wrapped, with the topic in the path)."""
    return post(
        f"{deployed.url}/projects/{PROJECT}/topics/{TOPIC}",
        {
            "message": pubsub_message(turn, message_id),
            "subscription": f"projects/{PROJECT}/subscriptions/{TOPIC}-to-agent",
        },
    )


def cloud_event(deployed: Deployed, turn: TurnRequest, message_id: str) -> int:
    """The same message as a binary-mode CloudEvent (what Eventarc would send)."""
    return post(
        deployed.url + "/",
        {
            "message": pubsub_message(turn, message_id),
            "subscription": f"projects/{PROJECT}/subscriptions/{TOPIC}-to-agent",
        },
        {
            "ce-specversion": "1.0",
            "ce-id": message_id,
            "ce-source": f"//pubsub.googleapis.com/projects/{PROJECT}/topics/{TOPIC}",
            "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        },
    )


@pytest.fixture
def db(deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> Any:
    from google.cloud import firestore

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", deployed.firestore_host)
    return firestore.Client(project=PROJECT)


def test_staged_source_imports_from_itself(deployed: Deployed) -> None:
    probe = subprocess.run(
        [
            str(deployed.venv_python),
            "-c",
            "import main, agent, deploychat, functions_framework; "
            "print(main.__file__); print(agent.__file__); print(deploychat.__file__)",
        ],
        cwd=deployed.staged,
        env={"PATH": "/usr/bin:/bin", "HOME": str(deployed.staged.parent)},
        capture_output=True,
        text=True,
        check=True,
    )
    for line in probe.stdout.split():
        assert Path(line).resolve().is_relative_to(deployed.staged.resolve()), line
    # No test or local-stack code came along.
    assert not (deployed.staged / "devstack").exists()
    assert not (deployed.staged / "tests").exists()


def test_pushed_turns_are_answered_into_firestore(deployed: Deployed, db: Any) -> None:
    session_id = f"staged-{uuid.uuid4().hex[:12]}"
    first = TurnRequest(
        session_id=session_id, turn_id="t-one", content="hello from the push", accepted_at=1.0
    )
    second = TurnRequest(
        session_id=session_id, turn_id="t-two", content="and a cloud event", accepted_at=2.0
    )
    assert push(deployed, first, "101") == 200, deployed.log_tail()
    assert cloud_event(deployed, second, "102") == 200, deployed.log_tail()
    # A redelivery (same message again) is acknowledged and answers nothing twice.
    assert push(deployed, first, "101") == 200, deployed.log_tail()

    events: list[dict[str, Any]] = [
        d.to_dict() or {} for d in events_ref(db, session_id).order_by("seq").stream()
    ]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(events) + 1)), seqs
    for turn in (first, second):
        mine = [e for e in events if e["turn_id"] == turn.turn_id]
        chats = [e for e in mine if e["type"] == "chat"]
        assert chats[0]["role"] == "user" and chats[0]["content"] == turn.content
        final = [e for e in chats if e["role"] == "assistant" and e.get("final")]
        assert len(final) == 1
        assert turn.content in final[0]["content"]  # the offline answer quotes the user
        typing = [e["is_typing"] for e in mine if e["type"] == "typing"]
        assert typing == [True, False]
        assert all("expire_at" in e for e in mine)
    # Turns do not interleave: every event of the first comes before the second's.
    order = [e["turn_id"] for e in events]
    assert order == sorted(order, key=lambda t: t != first.turn_id)

    session: dict[str, Any] = session_ref(db, session_id).get().to_dict() or {}
    assert session["last_seq"] == len(events)
    assert "expire_at" in session
    for turn in (first, second):
        doc = turn_ref(db, session_id, turn.turn_id).get()
        assert doc.exists and "expire_at" in (doc.to_dict() or {})


def test_bad_payload_is_acknowledged_not_retried(deployed: Deployed) -> None:
    status = post(
        f"{deployed.url}/projects/{PROJECT}/topics/{TOPIC}",
        {
            "message": {"data": base64.b64encode(b"not json").decode(), "messageId": "103"},
            "subscription": f"projects/{PROJECT}/subscriptions/{TOPIC}-to-agent",
        },
    )
    assert status == 200, (
        deployed.log_tail()
    )  # a payload that can never be understood is dropped, not redelivered
