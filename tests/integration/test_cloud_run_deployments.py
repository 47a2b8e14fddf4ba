"""Cloud Run deployments that outlive their turn, on the real stack.

The function talks to the fake Cloud Build and Cloud Storage (tests/support/fake_gcp.py) through
the real client libraries. The fake keeps each build's notifications (Cloud Build's `cloud-builds`
messages) for the test to publish to the Pub/Sub emulator in any order, any number of times;
the push subscription delivers them to the function's second entry point, handle_build_event.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.cloud import (
    firestore,  # type: ignore[attr-defined]
)

from deploychat.firestore_layout import events_ref, session_ref
from devstack.stack import Stack
from tests.support.fake_gcp import FakeGcp, service_url
from tests.support.ws import Frame, RawClient, assert_contiguous, events, reply_text

PROJECT = "demo-apps"
DEPLOY = f"deploy ./examples/hello-flask to cloud run project {PROJECT} region us-central1"
ASYNC_STAGES = ["queued", "registry", "building", "pushing", "deploying"]


@pytest.fixture(scope="module")
def cloud(stack: Stack) -> Iterator[FakeGcp]:
    """The function in offline mode, deploying to the fake Cloud Build; allowlist @example.com."""
    topic = f"projects/{stack.config.project}/topics/{stack.config.builds_topic}"
    fake = FakeGcp(notify_topic=topic, hold_notifications=True).start()
    saved = dict(stack.config.function_env)
    stack.config.function_env = {
        "DEPLOYCHAT_OFFLINE_PIECE_DELAY_MS": "0",
        "DEPLOYCHAT_CLOUDBUILD_ENDPOINT": fake.url,
        "DEPLOYCHAT_STORAGE_ENDPOINT": fake.url,
        "DEPLOYCHAT_DEPLOY_ALLOWLIST": json.dumps(["ops@example.com", "@example.com"]),
        "DEPLOYCHAT_CANCEL_POLL_S": "0.2",
    }
    stack.restart_function()
    yield fake
    stack.config.function_env = saved
    stack.restart_function()
    fake.stop()


@pytest.fixture
def fake(cloud: FakeGcp) -> Iterator[FakeGcp]:
    cloud.builds.clear()
    cloud.held.clear()
    cloud.cancelled_builds.clear()
    cloud.uploads.clear()
    yield cloud


def own_session(session_id: str, email: str | None, verified: bool) -> None:
    """What the edge writes from a verified ID token (here set directly, as a given)."""
    db = firestore.Client()
    session_ref(db, session_id).set(
        {"owner_email": email, "owner_email_verified": verified}, merge=True
    )


def stored(session_id: str) -> list[Frame]:
    db = firestore.Client()
    docs = events_ref(db, session_id).order_by("seq").stream()
    return [d.to_dict() or {} for d in docs]


def handled(stack: Stack, build_id: str) -> int:
    """How many notifications of the build handle_build_event has finished."""
    log = Path(stack.config.log_dir / "agent_fn_builds.log")
    text = log.read_text(errors="replace") if log.exists() else ""
    return len(re.findall(rf"build {re.escape(build_id)} \w+: \d+ events", text))


def wait_for(condition: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"gave up waiting for {what or condition}")


def ask_and_confirm(client: RawClient, uid: str) -> tuple[str, str, list[Frame]]:
    """Ask for the Cloud Run deployment, say yes; (deployment id, the yes turn, its frames)."""
    client.send({"type": "chat", "id": f"a-{uid}", "content": DEPLOY})
    frames = client.turn(f"a-{uid}", timeout=60)
    asks = [f for f in events(frames) if f["type"] == "deployment_update"]
    assert [a["stage"] for a in asks] == ["awaiting_confirmation"], frames
    assert asks[0]["confirm"]["target"] == "cloud_run"
    client.send({"type": "chat", "id": f"y-{uid}", "content": "yes"})
    frames = client.turn(f"y-{uid}", timeout=120)
    return asks[0]["deployment_id"], f"y-{uid}", frames


def run_build(fake: FakeGcp, build_id: str) -> dict[str, dict[str, Any]]:
    """Move the build to its end; its notifications by state (QUEUED, s0 ... s3, SUCCESS)."""
    while fake.advance(build_id)["status"] != "SUCCESS":
        pass
    names = ["QUEUED", "s0", "s1", "s2", "s3", "SUCCESS"]
    held = [b for b in fake.held if b["id"] == build_id]
    assert [b["status"] for b in held] == ["QUEUED"] + ["WORKING"] * 4 + ["SUCCESS"]
    return dict(zip(names, held, strict=True))


def test_notifications_out_of_order_and_twice_show_each_stage_once_in_order(
    stack: Stack, fake: FakeGcp, uid: str
) -> None:
    with RawClient(stack.ws_url) as client:
        session = client.init()["session_id"]
        own_session(session, "ops@example.com", True)
        deployment_id, yes_turn, frames = ask_and_confirm(client, uid)
        # The turn started the build and ended; the build runs on.
        started = [f for f in events(frames) if f["type"] == "deployment_update"]
        assert [f["stage"] for f in started] == ["starting", "packing", "uploading", "submitted"]
        assert not [f for f in events(frames) if f["type"] == "deployment_complete"]
        text = reply_text(frames, yes_turn)[1]["content"]
        assert "has started" in text and "keep chatting" in text
        (build_id,) = fake.wait_for_builds(1)
        assert build_id in text
        notes = run_build(fake, build_id)

        # Out of order and twice, with a later turn running in between.
        for name in ["s2", "QUEUED", "s0", "s2"]:
            fake.publish(notes[name])
        client.send({"type": "chat", "id": f"h-{uid}", "content": "help"})
        for name in ["SUCCESS", "s3", "QUEUED", "SUCCESS", "s1"]:
            fake.publish(notes[name])
        seen: list[Frame] = []

        def finished(frame: Frame) -> bool:
            # Both the deployment's end and the later turn's, in whichever order they come.
            seen.append(frame)
            types = {(f.get("type"), f.get("turn_id"), f.get("is_typing")) for f in seen}
            ended = any(f.get("type") == "deployment_complete" for f in seen)
            return ended and ("typing", f"h-{uid}", False) in types

        client.until(finished, timeout=90)
        done = [f for f in seen if f.get("type") == "deployment_complete"]

    wait_for(lambda: handled(stack, build_id) >= 9, what="all nine notifications handled")
    everything = stored(session)
    assert_contiguous(everything)
    mine = [e for e in everything if e.get("deployment_id") == deployment_id]
    updates = [e for e in mine if e["type"] == "deployment_update"]
    assert [u["stage"] for u in updates] == [
        "awaiting_confirmation",
        "starting",
        "packing",
        "uploading",
        "submitted",
        *ASYNC_STAGES,
    ]
    progress = [u["progress"] for u in updates]
    assert progress == sorted(progress), progress
    completes = [e for e in mine if e["type"] == "deployment_complete"]
    assert len(completes) == 1, completes
    (complete,) = completes
    assert complete["status"] == "succeeded" and complete["outcome"] == "succeeded"
    assert complete["url"] == service_url("hello-flask")
    assert mine[-1] == complete  # nothing after the end
    assert done[-1]["seq"] == complete["seq"]
    # The build's events carry the turn that started it, and come after that turn ended.
    yes_end = max(
        e["seq"] for e in everything if e["turn_id"] == yes_turn and e["type"] == "typing"
    )
    assert all(u["turn_id"] == yes_turn for u in mine[1:])
    assert min(u["seq"] for u in updates if u["stage"] == "queued") > yes_end


def test_a_later_cancel_cancels_the_build(stack: Stack, fake: FakeGcp, uid: str) -> None:
    with RawClient(stack.ws_url) as client:
        session = client.init()["session_id"]
        own_session(session, "dev@example.com", True)
        deployment_id, yes_turn, _ = ask_and_confirm(client, uid)
        (build_id,) = fake.wait_for_builds(1)
        # The turn has ended, its build runs on: the edge records the cancel on the turn and
        # publishes a cancel message, so the agent stops the build at once.
        client.send({"type": "cancel", "turn_id": yes_turn})
        wait_for(lambda: build_id in fake.cancelled_builds, what="the build cancelled")
        for note in list(fake.held):
            fake.publish(note)  # QUEUED, then CANCELLED
        frames = client.until(lambda f: f.get("type") == "deployment_complete", timeout=90)
    (complete,) = [f for f in frames if f["type"] == "deployment_complete"]
    assert complete["deployment_id"] == deployment_id
    assert complete["status"] == "failed" and complete["outcome"] == "cancelled"
    assert "Cancelled" in complete["message"]
    assert_contiguous(stored(session))


def test_a_cancel_heard_at_the_next_notification(stack: Stack, fake: FakeGcp, uid: str) -> None:
    with RawClient(stack.ws_url) as client:
        session = client.init()["session_id"]
        own_session(session, "dev@example.com", True)
        deployment_id, yes_turn, _ = ask_and_confirm(client, uid)
        (build_id,) = fake.wait_for_builds(1)
        db = firestore.Client()
        turn_doc = session_ref(db, session).collection("turns").document(f"t-{yes_turn}")
        turn = turn_doc.get().to_dict() or {}
        assert turn["status"] == "done" and turn["running_deployments"] == [deployment_id]
        # What the edge records for a cancel of a finished turn whose build still runs.
        turn_doc.set({"cancel_requested": True}, merge=True)
        fake.publish(fake.advance(build_id))  # WORKING: the handler sees the cancel
        wait_for(lambda: build_id in fake.cancelled_builds, what="the build cancelled")
        fake.publish(fake.held[-1])  # CANCELLED
        frames = client.until(lambda f: f.get("type") == "deployment_complete", timeout=90)
    assert frames[-1]["outcome"] == "cancelled"
    assert_contiguous(stored(session))
    assert (turn_doc.get().to_dict() or {})["running_deployments"] == []


@pytest.mark.parametrize(
    ("email", "verified"),
    [(None, False), ("mallory@example.net", True), ("ops@example.com", False)],
    ids=["guest", "not-on-the-list", "unverified"],
)
def test_a_deploy_is_refused_for_a_user_not_on_the_allowlist(
    stack: Stack, fake: FakeGcp, uid: str, email: str | None, verified: bool
) -> None:
    with RawClient(stack.ws_url) as client:
        session = client.init()["session_id"]
        own_session(session, email, verified)
        client.send({"type": "chat", "id": f"a-{uid}", "content": DEPLOY})
        frames = client.turn(f"a-{uid}", timeout=60)
        client.send({"type": "chat", "id": f"n-{uid}", "content": "analyse ./examples/hello-flask"})
        analysed = client.turn(f"n-{uid}", timeout=60)
    errors = [f for f in events(frames) if f["type"] == "error"]
    assert [e["code"] for e in errors] == ["forbidden"], frames
    assert "allowlist" in errors[0]["message"]
    assert not [f for f in events(frames) if f["type"].startswith("deployment")]
    assert fake.builds == {} and fake.uploads == {}
    # Everyone may still analyse.
    assert [f["type"] for f in events(analysed) if f["type"] == "analysis"] == ["analysis"]
