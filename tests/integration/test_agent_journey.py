"""The product's journey on the real stack: analyse, write a Dockerfile, confirm, deploy, open."""

from __future__ import annotations

import time
import urllib.request

from google.cloud import firestore

from devstack.stack import Stack
from tests.support.fake_gemini import FakeGemini, Reply, Script
from tests.support.ws import Frame, RawClient, assert_contiguous, events, reply_text


def progress_of(frames: list[Frame], deployment_id: str) -> list[int]:
    return [
        f["progress"]
        for f in events(frames)
        if f["type"] == "deployment_update" and f["deployment_id"] == deployment_id
    ]


def test_offline_journey_analyse_dockerfile_deploy_locally(
    offline: Stack, uid: str, cleanup_deployments: None
) -> None:
    with RawClient(offline.ws_url) as client:
        session = client.init()["session_id"]
        client.send({"type": "chat", "id": f"a-{uid}", "content": "analyse ./examples/hello-flask"})
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

        client.send(
            {"type": "chat", "id": f"p-{uid}", "content": "deploy ./examples/hello-flask locally"}
        )
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


def test_gemini_calls_the_tools(
    stack: Stack, fake_gemini: FakeGemini, uid: str, cleanup_deployments: None
) -> None:
    fake_gemini.script(
        uid,
        Script(
            replies=[
                Reply(
                    chunks=["Let me look at it."],
                    function_call=("analyse_repository", {"source": "./examples/hello-flask"}),
                ),
                Reply(
                    chunks=["It is a Flask app. "],
                    function_call=(
                        "request_deployment",
                        {"source": "./examples/hello-flask", "target": "local"},
                    ),
                ),
                Reply(chunks=["Please confirm the deployment."]),
            ]
        ),
    )
    with RawClient(stack.ws_url) as client:
        client.init()
        client.send(
            {"type": "chat", "id": f"g-{uid}", "content": f"put my flask example online [[{uid}]]"}
        )
        frames = client.turn(f"g-{uid}", timeout=60)
    kinds = [f["type"] for f in events(frames)]
    assert kinds.index("analysis") < kinds.index("deployment_update")
    text = reply_text(frames, f"g-{uid}")[1]["content"]
    assert text.startswith("Let me look at it.") and text.endswith("Please confirm the deployment.")
    calls = fake_gemini.calls_for(uid)
    assert len(calls) == 3
    # The tool results went back to the model as function responses.
    last = calls[-1].body["contents"]
    responses = [p["functionResponse"] for c in last for p in c["parts"] if "functionResponse" in p]
    assert [r["name"] for r in responses] == ["analyse_repository", "request_deployment"]
    assert "hello-flask" in str(responses[0]["response"])
    assert "tools" in calls[0].body and "systemInstruction" in calls[0].body


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
    offline: Stack, uid: str, cleanup_deployments: None
) -> None:
    with RawClient(offline.ws_url) as client:
        client.init()
        client.send(
            {"type": "chat", "id": f"p-{uid}", "content": "deploy ./examples/hello-flask locally"}
        )
        client.turn(f"p-{uid}")
        client.send({"type": "chat", "id": f"y-{uid}", "content": "yes"})
        first = client.until(
            lambda f: (
                f.get("type") == "deployment_update" and f.get("stage") != "awaiting_confirmation"
            )
        )
        client.send({"type": "cancel", "turn_id": f"y-{uid}"})
        frames = first + client.turn(f"y-{uid}", timeout=120)
    done = [f for f in events(frames) if f["type"] == "deployment_complete"]
    assert len(done) == 1 and done[0]["status"] == "failed"
    assert reply_text(frames, f"y-{uid}")[1]["stopped"] is True


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
