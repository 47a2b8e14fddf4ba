"""At-least-once everywhere: resumes, redeliveries, crashes and model failures lose nothing."""

from __future__ import annotations

import json
import time

from google.cloud import firestore, pubsub_v1

from devstack.stack import Stack
from tests.support.fake_gemini import FakeGemini, Reply, Script
from tests.support.ws import RawClient, assert_contiguous, events, is_turn_end, reply_text

SLOW = [f"part{i} " for i in range(12)]


def test_resume_from_every_last_seq_after_a_disconnect_mid_stream(
    ws_url: str, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(uid, Script(replies=[Reply(chunks=SLOW, delay_s=0.12)]))
    turn_id = f"r-{uid}"
    with RawClient(ws_url) as client:
        session = client.init()["session_id"]
        client.send({"type": "chat", "id": turn_id, "content": f"go [[{uid}]]"})
        seen = client.until(lambda f: f.get("role") == "assistant" and not f["final"])
    last = max(f["seq"] for f in events(seen))

    # Reconnect while the answer is still streaming: the rest, exactly once, in order.
    with RawClient(ws_url) as client:
        connected = client.init(session_id=session, last_seq=last)
        assert connected["resumed"] is True and connected["session_id"] == session
        rest = client.turn(turn_id)
    whole = events(seen) + events(rest)
    assert_contiguous(whole)
    pieces, final = reply_text(whole, turn_id)
    assert pieces == final["content"] == "".join(SLOW)
    total = whole[-1]["seq"]

    # And from every other point: every later event exactly once, then live ones.
    for last_seq in range(total + 1):
        with RawClient(ws_url) as client:
            assert client.init(session_id=session, last_seq=last_seq)["last_seq"] == total
            replay = [client.recv(timeout=10) for _ in range(total - last_seq)]
            assert [f["seq"] for f in replay] == list(range(last_seq + 1, total + 1))
            assert replay == whole[last_seq:]
            client.send({"type": "ping", "ts": last_seq})
            assert client.recv() == {"type": "pong", "ts": last_seq}, "nothing more was replayed"


def test_init_without_last_seq_gets_only_new_events(ws_url: str, uid: str) -> None:
    with RawClient(ws_url) as client:
        session = client.init()["session_id"]
        client.send({"type": "chat", "id": f"a-{uid}", "content": "one"})
        first = client.turn(f"a-{uid}")
    with RawClient(ws_url) as client:
        connected = client.init(session_id=session)
        assert connected["last_seq"] == first[-1]["seq"]
        client.send({"type": "chat", "id": f"b-{uid}", "content": "two"})
        second = client.turn(f"b-{uid}")
    assert_contiguous(second, start=connected["last_seq"] + 1)


def test_a_turn_published_twice_is_answered_once(
    stack: Stack, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(uid, Script(replies=[Reply(chunks=["x", "y"], delay_s=0.2)]))
    turn_id = f"p-{uid}"
    with RawClient(stack.ws_url) as client:
        session = client.init()["session_id"]
        payload = {
            "type": "turn",
            "v": 1,
            "session_id": session,
            "turn_id": turn_id,
            "content": f"dup [[{uid}]]",
            "accepted_at": time.time(),
        }
        publisher = pubsub_v1.PublisherClient(
            publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
        )
        topic = publisher.topic_path(stack.config.project, stack.config.topic)
        for _ in range(3):
            publisher.publish(
                topic,
                json.dumps(payload).encode(),
                ordering_key=session,
                session_id=session,
                turn_id=turn_id,
            ).result(10)
        frames = client.turn(turn_id)
        time.sleep(2)
        client.send({"type": "ping", "ts": 0})
        frames += client.until(lambda f: f["type"] == "pong")
    assert_contiguous(frames)
    assert sum(1 for f in events(frames) if is_turn_end(f, turn_id)) == 1
    reply_text(frames, turn_id)


def test_function_killed_mid_turn_is_retried_and_ends_with_one_final(
    stack: Stack, fake_gemini: FakeGemini, uid: str
) -> None:
    # The model answers the same text on each attempt, as a deterministic model would.
    fake_gemini.script(uid, Script(replies=[Reply(chunks=SLOW, delay_s=0.15)]))
    turn_id = f"k-{uid}"
    with RawClient(stack.ws_url) as client:
        client.init()
        client.send({"type": "chat", "id": turn_id, "content": f"crash [[{uid}]]"})
        frames = client.until(
            lambda f: f.get("role") == "assistant" and not f["final"] and f["seq"] >= 4
        )
        assert stack.function is not None
        stack.function.kill()
        stack.start_function()
        frames += client.turn(turn_id, timeout=60)
    stored = events(frames)
    assert_contiguous(stored)
    assert len({f["seq"] for f in stored}) == len(stored), "no event twice"
    pieces, final = reply_text(frames, turn_id)
    assert final["content"] == "".join(SLOW) == pieces
    assert sum(1 for f in stored if f["type"] == "chat" and f["role"] == "user") == 1
    assert len(fake_gemini.calls_for(uid)) >= 2


def test_a_model_429_is_retried(ws_url: str, fake_gemini: FakeGemini, uid: str) -> None:
    fake_gemini.script(uid, Script(errors=[429], replies=[Reply(chunks=["fine"])]))
    with RawClient(ws_url) as client:
        client.init()
        client.send({"type": "chat", "id": f"q-{uid}", "content": f"busy [[{uid}]]"})
        frames = client.turn(f"q-{uid}")
    assert reply_text(frames, f"q-{uid}")[1]["content"] == "fine"
    assert not [f for f in events(frames) if f["type"] == "error"]
    assert len(fake_gemini.calls_for(uid)) == 2


def test_a_persistent_429_ends_the_turn_with_an_error_event(
    stack: Stack, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(uid, Script(always_error=429))
    turn_id = f"e-{uid}"
    with RawClient(stack.ws_url) as client:
        client.init()
        client.send({"type": "chat", "id": turn_id, "content": f"never [[{uid}]]"})
        frames = client.turn(turn_id, timeout=90)
    stored = events(frames)
    assert_contiguous(stored)
    errors = [f for f in stored if f["type"] == "error"]
    assert len(errors) == 1
    # A quota error (429) is rate_limited; the user may send again later.
    assert errors[0]["code"] == "rate_limited" and errors[0]["retryable"] is True
    assert errors[0]["turn_id"] == turn_id
    # Retried within the turn (DEPLOYCHAT_MODEL_RETRY_ATTEMPTS=3), the user told it is retrying;
    # not once more per Pub/Sub delivery, which would keep them waiting for minutes.
    assert len(fake_gemini.calls_for(uid)) == 3
    retrying = [f for f in stored if f["type"] == "typing" and f.get("status") == "retrying"]
    assert len(retrying) == 1, "one notice while the retries last"


def test_a_model_400_is_an_error_event_at_once(
    ws_url: str, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(uid, Script(always_error=400))
    with RawClient(ws_url) as client:
        client.init()
        client.send({"type": "chat", "id": f"f-{uid}", "content": f"bad [[{uid}]]"})
        frames = client.turn(f"f-{uid}")
    errors = [f for f in events(frames) if f["type"] == "error"]
    assert [(e["code"], e["retryable"]) for e in errors] == [("agent_failed", False)]
    assert len(fake_gemini.calls_for(uid)) == 1


def test_a_bad_pubsub_payload_is_dropped_and_later_turns_work(stack: Stack, uid: str) -> None:
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(stack.config.project, stack.config.topic)
    publisher.publish(topic, b"not json").result(10)
    publisher.publish(topic, json.dumps({"type": "turn", "v": 1}).encode()).result(10)
    with RawClient(stack.ws_url) as client:
        client.init()
        client.send({"type": "chat", "id": f"g-{uid}", "content": "still there?"})
        reply_text(client.turn(f"g-{uid}"), f"g-{uid}")
    assert stack.function is not None
    deadline = time.monotonic() + 10
    while "dropping Pub/Sub message" not in stack.function.tail(200):
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_event_documents_follow_the_layout(stack: Stack, uid: str) -> None:
    with RawClient(stack.ws_url) as client:
        session = client.init()["session_id"]
        client.send({"type": "chat", "id": f"h-{uid}", "content": "layout"})
        frames = client.turn(f"h-{uid}")
    db = firestore.Client(project=stack.config.project)
    root = db.collection("sessions").document(session)
    doc = root.get().to_dict() or {}
    assert doc["last_seq"] == frames[-1]["seq"] and "active_turn" not in doc
    ids = [d.id for d in root.collection("events").stream()]
    assert ids == [f"{n:012d}" for n in range(1, frames[-1]["seq"] + 1)]
    turn = root.collection("turns").document(f"t-h-{uid}").get().to_dict() or {}
    assert turn["status"] == "done" and turn["attempts"] == 1
