"""The product's journey on the real stack: analyse, write a Dockerfile, confirm, deploy, open."""

from __future__ import annotations

import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.cloud import firestore

from devstack.stack import ROOT, Stack
from tests.conftest import offline_mode
from tests.support import sample_repos as samples
from tests.support.ws import Frame, RawClient, assert_contiguous, events, reply_text


@pytest.fixture(scope="module")
def offline(stack: Stack) -> Iterator[Stack]:
    """Every test here runs offline: one restart of the function for the module, not two for
    each test (the model's side of the journey is in test_agent_tools.py)."""
    with offline_mode(stack) as offline_stack:
        yield offline_stack


@pytest.fixture
def flask_copy(uid: str) -> Iterator[str]:
    """A copy of the Flask example inside the agent's workspace (the repository, in the test
    stack), which "write a Dockerfile" may write into; its path as the user types it."""
    folder = ROOT / ".devstack" / "test-apps" / uid / "hello-flask"
    shutil.copytree(ROOT / "examples" / "hello-flask", folder)
    yield f"./{folder.relative_to(ROOT).as_posix()}"
    shutil.rmtree(folder.parent, ignore_errors=True)


def progress_of(frames: list[Frame], deployment_id: str) -> list[int]:
    return [
        f["progress"]
        for f in events(frames)
        if f["type"] == "deployment_update" and f["deployment_id"] == deployment_id
    ]


def test_offline_journey_analyse_dockerfile_deploy_locally(
    offline: Stack, uid: str, cleanup_deployments: None, flask_copy: str
) -> None:
    with RawClient(offline.ws_url) as client:
        session = client.init()["session_id"]
        client.send({"type": "chat", "id": f"a-{uid}", "content": f"analyse {flask_copy}"})
        frames = client.turn(f"a-{uid}")
        analysis = [f for f in events(frames) if f["type"] == "analysis"]
        assert len(analysis) == 1
        data = analysis[0]["data"]
        assert (data["language"], data["framework"], data["name"]) == (
            "python",
            "flask",
            "hello-flask",
        )
        assert "Offline mode" in reply_text(frames, f"a-{uid}")[1]["content"]

        client.send({"type": "chat", "id": f"d-{uid}", "content": "write a Dockerfile"})
        frames = client.turn(f"d-{uid}")
        text = reply_text(frames, f"d-{uid}")[1]["content"]
        assert "```dockerfile" in text and "USER" in text and "$PORT" in text
        # Written into the local folder, and the analysis card now shows it.
        written = ROOT / flask_copy / "Dockerfile"
        assert written.is_file() and "USER" in written.read_text()
        cards = [f for f in events(frames) if f["type"] == "analysis"]
        assert len(cards) == 1 and cards[0]["data"]["dockerfile"] == "Dockerfile"
        assert cards[0]["data"]["build"] == "repository_dockerfile"
        assert cards[0]["data"]["generated_dockerfile"]["written_to"] == "Dockerfile"

        client.send({"type": "chat", "id": f"p-{uid}", "content": f"deploy {flask_copy} locally"})
        frames = client.turn(f"p-{uid}")
        asks = [f for f in events(frames) if f["type"] == "deployment_update"]
        assert [a["stage"] for a in asks] == ["awaiting_confirmation"]
        deployment_id = asks[0]["deployment_id"]
        assert asks[0]["confirm"]["target"] == "local"
        assert "yes" in reply_text(frames, f"p-{uid}")[1]["content"]

    # The confirmation survives a reconnect.
    with RawClient(offline.ws_url) as client:
        client.init(session_id=session)
        client.send({"type": "chat", "id": f"y-{uid}", "content": "yes"})
        frames = client.turn(f"y-{uid}", timeout=240)
    assert_contiguous(frames, start=events(frames)[0]["seq"])
    progress = progress_of(frames, deployment_id)
    assert progress == sorted(progress) and len(progress) >= 3, progress
    done = [f for f in events(frames) if f["type"] == "deployment_complete"]
    assert len(done) == 1 and done[0]["status"] == "succeeded", done
    url = done[0]["url"]
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
    assert url in reply_text(frames, f"y-{uid}")[1]["content"]


def test_the_same_confirming_turn_delivered_twice_deploys_once(
    offline: Stack, uid: str, cleanup_deployments: None
) -> None:
    import json

    from google.cloud import pubsub_v1

    with RawClient(offline.ws_url) as client:
        session = client.init()["session_id"]
        client.send(
            {"type": "chat", "id": f"p-{uid}", "content": "deploy ./examples/hello-flask locally"}
        )
        client.turn(f"p-{uid}")
        payload = {
            "type": "turn",
            "v": 1,
            "session_id": session,
            "turn_id": f"y-{uid}",
            "content": "yes",
            "accepted_at": time.time(),
        }
        publisher = pubsub_v1.PublisherClient(
            publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
        )
        topic = publisher.topic_path(offline.config.project, offline.config.topic)
        for _ in range(2):
            publisher.publish(topic, json.dumps(payload).encode(), ordering_key=session).result(10)
        frames = client.turn(f"y-{uid}", timeout=240)
        time.sleep(2)
        client.send({"type": "ping", "ts": 0})
        frames += client.until(lambda f: f["type"] == "pong")
    done = [f for f in events(frames) if f["type"] == "deployment_complete"]
    assert [d["status"] for d in done] == ["succeeded"]
    db = firestore.Client(project=offline.config.project)
    records = list(db.collection("sessions").document(session).collection("deployments").stream())
    assert len(records) == 1


def test_cancel_mid_deployment_stops_it(
    offline: Stack, uid: str, cleanup_deployments: None, tmp_path: Path
) -> None:
    # The app waits for `gate` before it imports: its deployment cannot finish until the test
    # opens the gate, so the cancel lands mid-deploy however slow or fast the machine is.
    gate = tmp_path / "gate"
    gated = samples.serve_sample(lambda d: samples.write_flask_gated(d, gate), tmp_path, "gated")
    with gated as url, RawClient(offline.ws_url) as client:
        client.init()
        client.send({"type": "chat", "id": f"p-{uid}", "content": f"deploy {url} locally"})
        client.turn(f"p-{uid}")
        client.send({"type": "chat", "id": f"y-{uid}", "content": "yes"})
        first = client.until(
            lambda f: f.get("type") == "deployment_update" and f.get("stage") == "health-check",
            timeout=240,
        )
        client.send({"type": "cancel", "turn_id": f"y-{uid}"})
        frames = first + client.turn(f"y-{uid}", timeout=120)
    gate.touch()
    done = [f for f in events(frames) if f["type"] == "deployment_complete"]
    assert len(done) == 1 and done[0]["status"] in ("failed", "cancelled")
    assert "ancel" in done[0]["message"]
    assert reply_text(frames, f"y-{uid}")[1]["stopped"] is True


def test_paths_out_of_the_workspace_are_refused(offline: Stack, uid: str) -> None:
    with RawClient(offline.ws_url) as client:
        client.init()
        client.send({"type": "chat", "id": f"x-{uid}", "content": "analyse ../../etc"})
        frames = client.turn(f"x-{uid}")
        client.send({"type": "chat", "id": f"f-{uid}", "content": "analyse file:///etc"})
        refused = client.turn(f"f-{uid}")
    errors = [f for f in events(frames) if f["type"] == "error"]
    assert len(errors) == 1 and "outside the workspace" in errors[0]["message"]
    assert errors[0]["retryable"] is False
    assert not [f for f in events(frames) if f["type"] == "analysis"]
    assert "not a git URL" in reply_text(refused, f"f-{uid}")[1]["content"]


def test_a_dockerfile_for_a_git_url_is_offered_for_download(
    offline: Stack, uid: str, tmp_path: Path
) -> None:
    with (
        samples.serve_sample(samples.write_express_app, tmp_path, "shop") as url,
        RawClient(offline.ws_url) as client,
    ):
        client.init()
        client.send({"type": "chat", "id": f"d-{uid}", "content": f"write a Dockerfile for {url}"})
        frames = client.turn(f"d-{uid}", timeout=60)
    cards = [f for f in events(frames) if f["type"] == "analysis"]
    offer = cards[-1]["data"]["generated_dockerfile"]
    assert offer["written_to"] is None and offer["filename"] == "Dockerfile"
    assert offer["dockerfile"].startswith("# syntax=docker/dockerfile:1")
    assert 'CMD ["node", "server.js"]' in offer["dockerfile"]


def test_declining_clears_the_confirmation(offline: Stack, uid: str) -> None:
    with RawClient(offline.ws_url) as client:
        client.init()
        client.send(
            {"type": "chat", "id": f"p-{uid}", "content": "deploy ./examples/hello-flask locally"}
        )
        client.turn(f"p-{uid}")
        client.send({"type": "chat", "id": f"n-{uid}", "content": "no"})
        frames = client.turn(f"n-{uid}")
        client.send({"type": "chat", "id": f"y-{uid}", "content": "yes"})
        later = client.turn(f"y-{uid}")
    done = [f for f in events(frames) if f["type"] == "deployment_complete"]
    assert [d["status"] for d in done] == ["failed"]
    assert not [f for f in events(later) if f["type"].startswith("deployment")]


def test_tool_failures_become_messages_and_error_events(offline: Stack, uid: str) -> None:
    with RawClient(offline.ws_url) as client:
        client.init()
        client.send({"type": "chat", "id": f"x-{uid}", "content": "analyse ./no/such/dir"})
        frames = client.turn(f"x-{uid}")
    errors = [f for f in events(frames) if f["type"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == "agent_failed"
    assert "could not analyse" in reply_text(frames, f"x-{uid}")[1]["content"]
