"""The turn log's guarantees, on the Firestore emulator: leases, fencing, no gaps, no repeats."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import pytest
from google.cloud import firestore

from agent.event_store import LeaseLost, QueuedBehind, SessionBusy, TurnLog
from agent.settings import AgentSettings
from agent.turn_runner import TurnRunner
from deploychat.firestore_layout import events_ref, session_ref, turn_ref
from deploychat.turn_message import TurnRequest
from devstack.stack import Stack


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(stack: Stack) -> firestore.Client:
    return firestore.Client(project=stack.config.project)


def log(
    db: firestore.Client,
    session: str,
    turn: str,
    clock: Clock,
    *,
    ordered: bool = True,
    hold_s: float | None = None,
) -> TurnLog:
    return TurnLog(
        db, session, turn, lease_s=60, ttl_s=3600, clock=clock, ordered=ordered, hold_s=hold_s
    )


def typing(turn: str, on: bool = True) -> dict[str, Any]:
    return {"type": "typing", "turn_id": turn, "is_typing": on}


def seqs(db: firestore.Client, session: str) -> list[int]:
    return [d.to_dict()["seq"] for d in events_ref(db, session).order_by("seq").stream()]


def test_a_second_turn_waits_until_the_first_finishes(db: firestore.Client, uid: str) -> None:
    clock = Clock()
    first, second = log(db, uid, "a", clock), log(db, uid, "b", clock)
    assert first.begin() is not None
    with pytest.raises(SessionBusy):
        second.begin()
    first.append([typing("a", False)], {}, finish=True)
    assert second.begin() is not None
    assert log(db, uid, "a", clock).begin() is None, "a finished turn is not run again"


def test_a_redelivery_takes_over_and_fences_out_the_old_attempt(
    db: firestore.Client, uid: str
) -> None:
    clock = Clock()
    old = log(db, uid, "t", clock)
    progress = old.begin()
    assert progress is not None and progress.attempts == 1
    old.append([typing("t")], {"typing_on": True})
    new = log(db, uid, "t", clock)
    retry = new.begin()
    assert retry is not None and retry.attempts == 2 and retry.typing_on is True
    with pytest.raises(LeaseLost):
        old.append([typing("t", False)], {})
    new.append([typing("t", False)], {}, finish=True)
    assert seqs(db, uid) == [1, 2]


def test_an_abandoned_turn_is_closed_for_clients_when_its_lease_expires(
    db: firestore.Client, uid: str
) -> None:
    clock = Clock()
    stuck = log(db, uid, "stuck", clock)
    assert stuck.begin() is not None
    stuck.append([typing("stuck")], {"typing_on": True})
    clock.now += 61
    nxt = log(db, uid, "next", clock)
    assert nxt.begin() is not None
    events = [d.to_dict() for d in events_ref(db, uid).order_by("seq").stream()]
    assert [(e["seq"], e["type"], e["turn_id"]) for e in events] == [
        (1, "typing", "stuck"),
        (2, "error", "stuck"),
        (3, "typing", "stuck"),
    ]
    assert events[1]["code"] == "agent_failed" and events[2]["is_typing"] is False
    assert log(db, uid, "stuck", clock).begin() is None, "an abandoned turn stays closed"


def test_concurrent_appends_never_share_or_skip_a_seq(db: firestore.Client, uid: str) -> None:
    from deploychat.errors import TransientError

    clock = Clock()
    turn = log(db, uid, "t", clock)
    assert turn.begin() is not None
    done: list[int] = []

    def writer(n: int) -> None:
        for _ in range(3):
            try:
                turn.append([typing("t"), typing("t", False)], {"writer": n})
                done.append(n)
            except TransientError:
                pass  # contention outlasted the retries: nothing written, Pub/Sub would retry

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert done, "some appends went through"
    assert seqs(db, uid) == list(range(1, 2 * len(done) + 1))
    assert (session_ref(db, uid).get().to_dict() or {})["last_seq"] == 2 * len(done)


def test_an_invalid_event_is_refused_and_nothing_is_written(db: firestore.Client, uid: str) -> None:
    from deploychat.errors import PermanentError

    clock = Clock()
    turn = log(db, uid, "t", clock)
    assert turn.begin() is not None
    with pytest.raises(PermanentError):
        turn.append([typing("t"), {"type": "typing", "turn_id": "t"}], {})
    assert seqs(db, uid) == []


def accept(db: firestore.Client, session: str, turn: str, at: float) -> None:
    """The edge's record of an accepted turn (edge/session_store.py writes these fields)."""
    turn_ref(db, session, turn).set({"content": "hi", "accepted_at": at, "status": "accepted"})


def test_a_copy_without_ordering_key_waits_for_the_earlier_queued_turn(
    db: firestore.Client, uid: str
) -> None:
    clock = Clock()
    accept(db, uid, "first", clock.now - 2)
    accept(db, uid, "second", clock.now - 1)
    copy = log(db, uid, "second", clock, ordered=False)
    with pytest.raises(QueuedBehind):
        copy.begin()
    assert seqs(db, uid) == [], "a refused copy writes nothing"
    first = log(db, uid, "first", clock)
    assert first.begin() is not None
    first.append([typing("first", False)], {}, finish=True)
    again = log(db, uid, "second", clock, ordered=False)
    assert again.begin() is not None, "once the earlier turn started, the copy may go"


def test_a_keyed_delivery_is_never_held_back(db: firestore.Client, uid: str) -> None:
    # Pub/Sub's order for one key is the publishes' order, which two edges may make differ
    # from the accepts': holding it back would deadlock the key (see agent/event_store.py).
    clock = Clock()
    accept(db, uid, "first", clock.now - 2)
    accept(db, uid, "second", clock.now - 1)
    assert log(db, uid, "second", clock).begin() is not None


def test_an_earlier_turn_lost_for_longer_than_the_hold_holds_nothing_back(
    db: firestore.Client, uid: str
) -> None:
    clock = Clock()
    accept(db, uid, "lost", clock.now - 61)
    accept(db, uid, "later", clock.now - 1)
    copy = log(db, uid, "later", clock, ordered=False)
    assert copy.begin() is not None


def test_an_earlier_turn_queued_past_the_lease_still_holds_a_copy_back_within_the_hold(
    db: firestore.Client, uid: str
) -> None:
    # The 10,000-turn chaos run: Pub/Sub kept a session's turn queued for over the lease, and an
    # unkeyed copy of the next one went first. Queued is not lost: the hold is its own bound.
    clock = Clock()
    accept(db, uid, "slow", clock.now - 61)
    accept(db, uid, "later", clock.now - 1)
    held = log(db, uid, "later", clock, ordered=False, hold_s=600)
    with pytest.raises(QueuedBehind):
        held.begin()
    clock.now += 600
    late = log(db, uid, "later", clock, ordered=False, hold_s=600)
    assert late.begin() is not None, "past the hold the earlier turn is taken for lost"


def test_the_runner_acknowledges_an_early_copy_and_the_turn_stays_accepted(
    db: firestore.Client, uid: str
) -> None:
    # Retried, a held copy spends Pub/Sub's delivery attempts for as long as the earlier turn
    # is queued (the emulator stops pushing altogether once one is dead-lettered). Dropped, it
    # costs nothing: the turn is still `accepted`, so its keyed delivery or the sweeper runs it.
    now = time.time()
    accept(db, uid, "first", now - 2)
    accept(db, uid, "second", now - 1)
    runner = TurnRunner(db, cast(Any, None), AgentSettings())  # the model is never reached
    copy = TurnRequest(session_id=uid, turn_id="second", content="hi", accepted_at=now - 1)
    runner.run(copy, ordered=False)  # returns: the delivery is acknowledged
    assert seqs(db, uid) == []
    assert (turn_ref(db, uid, "second").get().to_dict() or {})["status"] == "accepted"


def test_a_turn_whose_publish_failed_holds_nothing_back(db: firestore.Client, uid: str) -> None:
    clock = Clock()
    accept(db, uid, "failed", clock.now - 2)
    turn_ref(db, uid, "failed").update({"status": "unpublished"})
    accept(db, uid, "next", clock.now - 1)
    copy = log(db, uid, "next", clock, ordered=False)
    assert copy.begin() is not None


def test_the_edge_marks_a_failed_publish_and_a_resend_takes_its_place_anew(
    db: firestore.Client, uid: str
) -> None:
    from edge.identity import User
    from edge.session_store import SessionStore
    from edge.settings import EdgeSettings

    store = SessionStore(EdgeSettings(), db=db)
    user = User(uid=f"u-{uid}")
    session_ref(db, uid).set({"owner_uid": user.uid})
    assert store.accept_turn(uid, user, "t1", "hello") is True
    first = turn_ref(db, uid, "t1").get().to_dict()
    store.mark_unpublished(uid, "t1")
    assert turn_ref(db, uid, "t1").get().to_dict()["status"] == "unpublished"
    assert store.accept_turn(uid, user, "t1", "hello") is False, "a resend is not a new turn"
    again = turn_ref(db, uid, "t1").get().to_dict()
    assert again["status"] == "accepted" and again["accepted_at"] >= first["accepted_at"]
    # A publish that timed out but went through: the started turn is left alone.
    turn_ref(db, uid, "t1").update({"status": "running"})
    store.mark_unpublished(uid, "t1")
    assert turn_ref(db, uid, "t1").get().to_dict()["status"] == "running"


def test_a_turn_accepted_and_never_started_is_published_again_with_backoff(
    db: firestore.Client, uid: str
) -> None:
    """Its push was lost: no attempt, no lease, nothing holds the session. The sweeper finds it
    by its record (as the edge writes it) and publishes it again, later again, until it starts."""
    from agent.settings import AgentSettings
    from agent.sweeper import TurnSweeper

    now = [2_000_000.0]
    session = f"unstarted-{uid}"
    session_ref(db, session).set({"last_seq": 0})
    for n, turn in enumerate(("first", "second")):
        turn_ref(db, session, turn).set(
            {"status": "accepted", "content": f"hello {turn}", "accepted_at": now[0] + n}
        )
    published: list[TurnRequest] = []
    settings = AgentSettings(sweep_unstarted_after_s=120, sweep_retry_after_s=60)
    sweeper = TurnSweeper(db, settings, publish=published.append, clock=lambda: now[0])

    def republished() -> list[str]:
        keys = sweeper.sweep().republished
        return sorted(k.split("/")[1] for k in keys if k.startswith(f"{session}/"))

    assert republished() == [], "not old enough"
    now[0] += 200
    assert republished() == ["first", "second"]
    assert [(t.turn_id, t.content) for t in published if t.session_id == session] == [
        ("first", "hello first"),
        ("second", "hello second"),
    ]
    assert republished() == [], "its copy is on the way"
    now[0] += 61
    assert republished() == ["first", "second"], "no attempt came: again"
    now[0] += 61
    assert republished() == [], "then after twice as long"
    # The first copy starts: only the second is still waiting (behind it, event_store.py).
    assert log(db, session, "first", Clock()).begin() is not None
    now[0] += 61
    assert republished() == ["second"]
