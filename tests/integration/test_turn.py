"""One chat turn through the real stack: edge (gunicorn) → Pub/Sub → function → Firestore → edge."""

from __future__ import annotations

import time

from devstack.stack import Stack
from tests.support.fake_gemini import FakeGemini, Reply, Script
from tests.support.ws import RawClient, assert_contiguous, events, reply_text


def test_a_whole_turn(ws_url: str, fake_gemini: FakeGemini, uid: str) -> None:
    fake_gemini.script(
        uid, Script(replies=[Reply(chunks=["Hello", ", ", "world", "!"], delay_s=0.15)])
    )
    with RawClient(ws_url) as client:
        connected = client.init()
        assert connected["last_seq"] == 0 and connected["resumed"] is False
        assert connected["protocol"] == 1
        client.send({"type": "chat", "id": f"m-{uid}", "content": f"hi [[{uid}]]"})
        frames = client.turn(f"m-{uid}")

    assert frames[0] == {"type": "ack", "id": f"m-{uid}"}
    stored = events(frames)
    assert_contiguous(stored)
    kinds = [(f["type"], f.get("role"), f.get("final"), f.get("is_typing")) for f in stored]
    assert kinds[0] == ("chat", "user", True, None)
    assert kinds[1] == ("typing", None, None, True)
    assert kinds[-2] == ("chat", "assistant", True, None)
    assert kinds[-1] == ("typing", None, None, False)
    assert stored[0]["content"] == f"hi [[{uid}]]"
    assert stored[0]["message_id"] == f"m-{uid}"
    pieces, final = reply_text(frames, f"m-{uid}")
    assert final["content"] == "Hello, world!" == pieces
    assert len(events(frames)) - 4 >= 2, "the answer streams in more than one piece"
    calls = fake_gemini.calls_for(uid)
    assert len(calls) == 1 and calls[0].model == "gemini-2.5-flash"


def test_history_goes_to_the_model(ws_url: str, fake_gemini: FakeGemini, uid: str) -> None:
    with RawClient(ws_url) as client:
        client.init()
        client.send({"type": "chat", "id": f"a-{uid}", "content": f"first [[{uid}]]"})
        client.turn(f"a-{uid}")
        client.send({"type": "chat", "id": f"b-{uid}", "content": f"second [[{uid}]]"})
        client.turn(f"b-{uid}")
    second = fake_gemini.calls_for(uid)[1].body["contents"]
    assert [c["role"] for c in second] == ["user", "model", "user"]
    assert second[0]["parts"][0]["text"] == f"first [[{uid}]]"
    assert second[1]["parts"][0]["text"] == f"Echo: first [[{uid}]]"


def test_turns_are_answered_in_ack_order_without_interleaving(
    ws_url: str, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(uid, Script(replies=[Reply(chunks=["a", "b", "c"], delay_s=0.1)]))
    ids = [f"{n}-{uid}" for n in range(3)]
    with RawClient(ws_url) as client:
        client.init()
        for turn_id in ids:
            client.send({"type": "chat", "id": turn_id, "content": f"{turn_id} [[{uid}]]"})
        frames = client.turn(ids[-1], timeout=60)
    acks = [f["id"] for f in frames if f["type"] == "ack"]
    assert acks == ids
    stored = events(frames)
    assert_contiguous(stored)
    order = [f["turn_id"] for f in stored]
    # Each turn's events form one block, and the blocks come in ack order.
    blocks = [t for i, t in enumerate(order) if i == 0 or order[i - 1] != t]
    assert blocks == ids


def test_offline_mode_answers_without_a_model(stack: Stack, uid: str) -> None:
    saved = dict(stack.config.function_env)
    stack.config.function_env = {"DEPLOYCHAT_OFFLINE_PIECE_DELAY_MS": "50"}
    try:
        stack.restart_function()
        with RawClient(stack.ws_url) as client:
            client.init()
            client.send({"type": "chat", "id": f"o-{uid}", "content": "what can you do?"})
            frames = client.turn(f"o-{uid}")
    finally:
        stack.config.function_env = saved
        stack.restart_function()
    pieces, final = reply_text(frames, f"o-{uid}")
    assert "Offline mode" in final["content"] and pieces == final["content"]
    assert len([f for f in events(frames) if f["type"] == "chat" and not f["final"]]) >= 3


def test_cancel_stops_the_turn_with_the_text_so_far(
    ws_url: str, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(
        uid, Script(replies=[Reply(chunks=[f"w{i} " for i in range(40)], delay_s=0.1)])
    )
    turn_id = f"c-{uid}"
    with RawClient(ws_url) as client:
        client.init()
        client.send({"type": "chat", "id": turn_id, "content": f"long [[{uid}]]"})
        first = client.until(lambda f: f.get("role") == "assistant")
        client.send({"type": "cancel", "turn_id": turn_id})
        frames = first + client.turn(turn_id)
        # Cancelling it again, or an unknown turn, changes nothing.
        client.send({"type": "cancel", "turn_id": turn_id})
        client.send({"type": "cancel", "turn_id": f"nope-{uid}"})
        client.send({"type": "ping", "ts": 1})
        assert client.recv() == {"type": "pong", "ts": 1}
    pieces, final = reply_text(frames, turn_id)
    assert final["stopped"] is True
    assert final["content"] == pieces
    assert 0 < len(final["content"]) < len("".join(f"w{i} " for i in range(40)))
    assert_contiguous(frames)


def test_same_id_sent_twice_is_acked_twice_and_answered_once(
    ws_url: str, fake_gemini: FakeGemini, uid: str
) -> None:
    turn_id = f"d-{uid}"
    with RawClient(ws_url) as client:
        session = client.init()["session_id"]
        client.send({"type": "chat", "id": turn_id, "content": f"once [[{uid}]]"})
        client.send({"type": "chat", "id": turn_id, "content": f"once [[{uid}]]"})
        frames = client.turn(turn_id)
        # A resend from another connection, after the answer, is acked and ignored.
        with RawClient(ws_url) as other:
            other.init(session_id=session)
            other.send({"type": "chat", "id": turn_id, "content": f"once [[{uid}]]"})
            assert other.recv() == {"type": "ack", "id": turn_id}
        time.sleep(1.5)
        client.send({"type": "ping", "ts": 2})
        frames += client.until(lambda f: f["type"] == "pong")
    assert [f["id"] for f in frames if f["type"] == "ack"] == [turn_id, turn_id]
    stored = events(frames)
    assert_contiguous(stored)
    assert [f for f in stored if f["type"] == "chat" and f["role"] == "user"].__len__() == 1
    reply_text(frames, turn_id)
    assert len(fake_gemini.calls_for(uid)) == 1
