"""Delivery that heals itself, on a stack of 2 edges and 2 function instances behind a balancer:
a frozen Firestore, a function killed where Pub/Sub never redelivers, concurrent copies.

Bounds stated (and asserted here, on this stack's short settings: listen idle 2 s, probe 3 s,
heartbeat 1 s, sweep every 1 s):
- after Firestore comes back from a 20 s SIGSTOP, every socket has every stored event within
  LISTEN_BOUND_S of the event being stored (the probe timeout plus catch-up and load);
- a turn whose attempt was killed, and which Pub/Sub never delivers again, is driven again by
  the sweeper and answered within SWEEP_BOUND_S of the instances being up again (3 missed beats
  + a sweep + a publish retried 10 s later if the first found no instance + the answer).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.cloud import firestore, pubsub_v1  # type: ignore[attr-defined]

from agent.event_store import TurnLog
from agent.settings import AgentSettings
from agent.sweeper import TurnSweeper
from deploychat.firestore_layout import events_ref, session_ref, turn_ref
from deploychat.turn_message import TurnRequest
from devstack.processes import free_port
from devstack.stack import Stack, StackConfig
from tests.conftest import ARTIFACTS, function_env
from tests.support.fake_gemini import FakeGemini, Reply, Script
from tests.support.ws import Frame, RawClient, assert_contiguous, events, is_turn_end, reply_text

LISTEN_BOUND_S = 10.0
SWEEP_BOUND_S = 30.0


@pytest.fixture(scope="module")
def healing(fake_gemini: FakeGemini) -> Iterator[Stack]:
    saved = dict(os.environ)
    run = uuid.uuid4().hex[:8]
    config = StackConfig(
        topic=f"heal-{run}",
        edge_port=free_port(),
        log_dir=ARTIFACTS / "logs" / f"healing-{run}",
        min_backoff_s=1,
        max_backoff_s=2,
        edges=2,
        functions=2,
        balancer=True,
        sweep_interval_s=1.0,
        function_env={
            **function_env(fake_gemini),
            "DEPLOYCHAT_TURN_HEARTBEAT_S": "1",
            # Publishes without an attempt, 10 s apart: instances take up to a minute to start.
            "DEPLOYCHAT_SWEEP_RETRY_AFTER_S": "10",
            "DEPLOYCHAT_SWEEP_MAX_REDRIVES": "12",
        },
        edge_env={
            "DEPLOYCHAT_FEED_LINGER_S": "2",
            "DEPLOYCHAT_LISTEN_IDLE_TIMEOUT_S": "2",
            "DEPLOYCHAT_LISTEN_PROBE_TIMEOUT_S": "3",
        },
    )
    stack = Stack(config)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        # The session's shared stack (if any) is talked to through these again.
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def db(healing: Stack) -> firestore.Client:
    return firestore.Client(project=healing.config.project)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def chat(client: RawClient, turn_id: str, content: str) -> list[Frame]:
    """Send until acked, as a client's outbox does; the frames that came meanwhile."""
    frames: list[Frame] = []
    for _ in range(10):
        client.send({"type": "chat", "id": turn_id, "content": content})
        got = client.until(
            lambda f: f.get("type") in ("ack", "error") and turn_id in (f.get("id"), f.get("ref")),
            timeout=60,
        )
        frames += got
        if got[-1]["type"] == "ack":
            return frames
        time.sleep(0.5)  # not accepted (a busy store): sent again, same id
    raise AssertionError(f"{turn_id} never acked")


def publish_copies(stack: Stack, session: str, turn_id: str, content: str, n: int) -> None:
    """`n` copies of one turn straight to the topic, without ordering key, all at once."""
    payload = TurnRequest(
        session_id=session, turn_id=turn_id, content=content, accepted_at=time.time()
    )
    data, attributes = payload.to_pubsub()
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(stack.config.project, stack.config.topic)
    futures = [publisher.publish(topic, data, **attributes) for _ in range(n)]
    for future in futures:
        future.result(10)


# ---------------------------------------------------------------- the Listen watchdog


@pytest.mark.timeout(900)  # the module's stack of 10 processes starts slowly on a busy machine
def test_a_frozen_firestore_costs_seconds_once_it_is_back(
    healing: Stack, db: firestore.Client, fake_gemini: FakeGemini, uid: str
) -> None:
    assert healing.firestore is not None
    slow = [f"w{i} " for i in range(40)]
    fake_gemini.script(uid, Script(replies=[Reply(chunks=slow, delay_s=0.25)]))
    clients: list[RawClient] = []
    sessions: list[str] = []
    for n in range(6):
        client = RawClient(healing.ws_urls[n % 2])
        sessions.append(client.init()["session_id"])
        clients.append(client)
    received: dict[str, dict[int, float]] = {s: {} for s in sessions}
    frames: dict[str, list[Frame]] = {s: [] for s in sessions}
    try:
        # A turn each, to have every listener warm; then a long one, frozen mid-stream.
        for client, session in zip(clients, sessions, strict=True):
            frames[session] += chat(client, f"a-{session}", "hello")
        for client, session in zip(clients, sessions, strict=True):
            if not any(is_turn_end(f, f"a-{session}") for f in frames[session]):
                frames[session] += client.turn(f"a-{session}", timeout=60)
        a_events = {s: events(frames[s]) for s in sessions}
        for client, session in zip(clients, sessions, strict=True):
            frames[session] += chat(client, f"b-{session}", f"long [[{uid}]]")
        for session in sessions:
            for frame in events(frames[session]):
                received[session][frame["seq"]] = time.monotonic()

        def read(client: RawClient, session: str) -> None:
            for frame in client.until(lambda f: is_turn_end(f, f"b-{session}"), timeout=180):
                frames[session].append(frame)
                if "seq" in frame:
                    received[session][frame["seq"]] = time.monotonic()

        readers = [
            threading.Thread(target=read, args=(c, s), daemon=True)
            for c, s in zip(clients, sessions, strict=True)
        ]
        for reader in readers:
            reader.start()
        # Mid-stream: each session has its turn's user message, typing and a piece.
        base = {s: len(frames_a) for s, frames_a in a_events.items()}
        wait_until(lambda: all(len(received[s]) >= base[s] + 3 for s in sessions), 60, "pieces")

        healing.firestore.process.signal(signal.SIGSTOP)
        try:
            time.sleep(20)
        finally:
            healing.firestore.process.signal(signal.SIGCONT)
        resumed = time.monotonic()

        # When each event is first seen stored, against when its socket got it.
        stored: dict[str, dict[int, float]] = {s: {} for s in sessions}
        finished: set[str] = set()
        while len(finished) < len(sessions) and time.monotonic() - resumed < 150:
            for session in set(sessions) - finished:
                for snap in events_ref(db, session).order_by("seq").stream():
                    event = snap.to_dict() or {}
                    stored[session].setdefault(event["seq"], time.monotonic())
                    if is_turn_end(event, f"b-{session}"):
                        finished.add(session)
            time.sleep(0.2)
        assert finished == set(sessions), "every turn ends once Firestore is back"
        for reader in readers:
            reader.join(LISTEN_BOUND_S + 60)
        lags = []
        for session in sessions:
            for seq, at in stored[session].items():
                got = received[session].get(seq)
                if got is None:
                    assert seq <= min(received[session]), f"{session}: event {seq} never came"
                    continue
                lags.append(max(0.0, got - max(at, resumed)))
        worst = max(lags)
        print(f"worst lag after the resume: {worst:.1f} s over {len(lags)} events")
        assert worst < LISTEN_BOUND_S, f"an event reached its socket {worst:.1f} s late"
        for session in sessions:
            assert_contiguous(frames[session])
            _, final = reply_text(frames[session], f"b-{session}")
            assert final["content"] == "".join(slow)
    finally:
        for client in clients:
            client.close()

    # Sessions made after the freeze stream live on both edges.
    for url in healing.ws_urls:
        with RawClient(url) as client:
            client.init()
            fresh = chat(client, f"c-{uid}-{url[-12:-8]}", "after")
            fresh += client.turn(f"c-{uid}-{url[-12:-8]}", timeout=30)
        assert_contiguous(fresh)


# ---------------------------------------------------------------- stuck turns


@pytest.mark.timeout(900)
def test_a_turn_whose_function_died_is_driven_again_when_pubsub_never_redelivers(
    healing: Stack, fake_gemini: FakeGemini, uid: str
) -> None:
    slow = [f"s{i} " for i in range(16)]
    fake_gemini.script(uid, Script(replies=[Reply(chunks=slow, delay_s=0.2)]))
    turn_id = f"k-{uid}"
    with RawClient(healing.ws_url) as client:
        client.init()
        frames = chat(client, turn_id, f"die [[{uid}]]")
        frames += client.until(lambda f: f.get("role") == "assistant" and not f["final"])
        # Whatever Pub/Sub does now, its copies of this message go nowhere.
        healing.balancer_drop(turn_id)
        killed = time.monotonic()
        for proc in healing.functions:
            assert proc is not None
            proc.kill()
        # (Starting an instance takes seconds to tens of seconds on a loaded machine.)
        for i in range(len(healing.functions)):
            healing.start_function(i)
        back = time.monotonic()
        frames += client.turn(turn_id, timeout=SWEEP_BOUND_S + 30)
        took = time.monotonic() - back
    print(f"answered {took:.1f} s after the instances were back ({back - killed:.1f} s down)")
    assert took < SWEEP_BOUND_S
    stored = events(frames)
    assert_contiguous(stored)
    _, final = reply_text(frames, turn_id)
    assert final["content"] == "".join(slow)
    assert not [f for f in stored if f["type"] == "error"]
    assert sum(1 for f in stored if is_turn_end(f, turn_id)) == 1


@pytest.mark.timeout(900)
def test_seven_copies_of_a_turn_at_once_give_one_answer(
    healing: Stack, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(
        uid, Script(replies=[Reply(chunks=[f"c{i} " for i in range(10)], delay_s=0.2)])
    )
    turn_id = f"seven-{uid}"
    with RawClient(healing.ws_url) as client:
        session = client.init()["session_id"]
        publish_copies(healing, session, turn_id, f"copies [[{uid}]]", 7)
        frames = client.turn(turn_id, timeout=60)
        # Late copies, if any, would show up now.
        time.sleep(3)
        client.send({"type": "ping", "ts": 1})
        frames += client.until(lambda f: f["type"] == "pong")
    stored = events(frames)
    assert_contiguous(stored)
    assert not [f for f in stored if f["type"] == "error"], stored
    _, final = reply_text(frames, turn_id)
    assert final["content"] == "".join(f"c{i} " for i in range(10))
    assert sum(1 for f in stored if f["type"] == "chat" and f["role"] == "user") == 1


@pytest.mark.timeout(900)
def test_the_sweeper_closes_a_turn_whose_attempts_are_spent_once(
    healing: Stack, db: firestore.Client, uid: str
) -> None:
    """On the emulator, with a clock of its own, far ahead: the stack's own sweeper (real time)
    sees this turn's attempts alive, and no publish here is ever answered."""
    now = [time.time() + 10**6]
    published: list[TurnRequest] = []
    settings = AgentSettings(
        project_id=healing.config.project,
        max_delivery_attempts=2,
        sweep_max_redrives=2,
        sweep_retry_after_s=5,
        turn_heartbeat_s=1,
    )
    sweeper = TurnSweeper(db, settings, publish=published.append, clock=lambda: now[0])
    session = f"swept-{uid}"
    session_ref(db, session).set({"last_seq": 0})

    def attempt() -> None:
        log = TurnLog(db, session, "t1", lease_s=600, ttl_s=3600, clock=lambda: now[0])
        opening: Any = lambda progress: (  # noqa: E731
            []
            if progress.user_stored
            else [
                {
                    "type": "chat",
                    "turn_id": "t1",
                    "message_id": "t1",
                    "role": "user",
                    "content": "hi",
                    "final": True,
                },
                {"type": "typing", "turn_id": "t1", "is_typing": True},
            ],
            {"user_stored": True, "typing_on": True},
        )
        assert log.begin(opening) is not None
        # Dies here: no heartbeat thread (no heartbeat_s), so it is alive until the lease.

    def stored() -> list[dict[str, Any]]:
        return [s.to_dict() or {} for s in events_ref(db, session).order_by("seq").stream()]

    attempt()
    db_session = session_ref(db, session)
    db_session.update({"active_turn.alive_until": now[0] + 3})  # as a beating attempt has
    key = f"{session}/t1"
    assert key not in sweeper.sweep().redriven, "alive: left alone"
    now[0] += 4
    assert key in sweeper.sweep().redriven
    assert [t.content for t in published if t.session_id == session] == ["hi"]
    assert key not in sweeper.sweep().redriven, "published lately: its copy is on the way"
    # The copy starts (a second attempt) and dies too: attempts spent.
    now[0] += 6
    attempt()
    db_session.update({"active_turn.alive_until": now[0] + 3})
    now[0] += 4
    report = sweeper.sweep()
    assert key in report.closed
    assert key not in sweeper.sweep().closed, "closed once"
    kinds = [(e["type"], e.get("code"), e.get("is_typing")) for e in stored()]
    assert kinds == [
        ("chat", None, None),
        ("typing", None, True),
        ("error", "agent_failed", None),
        ("typing", None, False),
    ]
    assert "active_turn" not in (db_session.get().to_dict() or {})
    assert (turn_ref(db, session, "t1").get().to_dict() or {})["status"] == "abandoned"
    assert json.dumps(report.as_dict())
