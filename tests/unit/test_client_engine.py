"""The client engine's decisions with a fake clock: no sockets, no sleeping."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from deploychat.client import state_file
from deploychat.client.config import ClientConfig
from deploychat.client.engine import (
    Backoff,
    Beat,
    Heartbeat,
    LostReason,
    Outbox,
    OutgoingMessage,
    Reconnector,
    SeqTracker,
    Verdict,
)


def middle() -> float:
    return 0.5  # the jitter's centre: the delay is exactly the base


# ---------------------------------------------------------------- backoff


def test_backoff_schedule_is_1s_times_1_5_capped_at_30s() -> None:
    backoff = Backoff.from_config(ClientConfig())
    bases = [round(backoff.base(n), 3) for n in range(1, 12)]
    assert bases == [1.0, 1.5, 2.25, 3.375, 5.062, 7.594, 11.391, 17.086, 25.629, 30.0, 30.0]
    assert [backoff.delay(n, middle) for n in (1, 2)] == [1.0, 1.5]


@pytest.mark.parametrize("attempt", [1, 3, 6, 9, 10, 20])
def test_jitter_stays_within_its_bounds_and_under_the_cap(attempt: int) -> None:
    backoff = Backoff(initial_s=1.0, multiplier=1.5, max_s=30.0, jitter=0.2)
    base = backoff.base(attempt)
    rng = random.Random(attempt)
    delays = [backoff.delay(attempt, rng.random) for _ in range(2000)]
    assert min(delays) >= base * 0.8 - 1e-9
    assert max(delays) <= min(30.0, base * 1.2) + 1e-9
    assert backoff.delay(attempt, lambda: 0.0) == pytest.approx(base * 0.8)
    # Spread out, not all the same: that is the point of jitter.
    assert max(delays) - min(delays) > base * 0.1 or base == 30.0


def test_no_jitter_gives_the_plain_schedule() -> None:
    backoff = Backoff(initial_s=0.2, multiplier=2, max_s=1, jitter=0)
    assert [backoff.delay(n, random.random) for n in range(1, 5)] == [0.2, 0.4, 0.8, 1]


def test_gives_up_after_max_attempts_and_starts_over_after_connecting() -> None:
    reconnector = Reconnector(Backoff(jitter=0), max_attempts=10, rand=middle)
    delays = [reconnector.next_delay(LostReason.FAILED) for _ in range(11)]
    assert delays[:10] == [Backoff(jitter=0).base(n) for n in range(1, 11)]
    assert delays[10] is None
    assert reconnector.attempts == 10
    reconnector.connected()
    assert reconnector.next_delay(LostReason.CLOSED) == 1.0


def test_a_manual_reconnect_gets_a_fresh_series() -> None:
    reconnector = Reconnector(Backoff(jitter=0), max_attempts=2, rand=middle)
    assert reconnector.next_delay(LostReason.FAILED) == 1.0
    assert reconnector.next_delay(LostReason.FAILED) == 1.5
    assert reconnector.next_delay(LostReason.FAILED) is None
    reconnector.reset()
    assert reconnector.next_delay(LostReason.FAILED) == 1.0


def test_close_1012_reconnects_at_once_then_backs_off() -> None:
    reconnector = Reconnector(Backoff(jitter=0), max_attempts=10, rand=middle)
    assert reconnector.next_delay(LostReason.RESTART) == 0.0
    assert reconnector.next_delay(LostReason.FAILED) == 1.5


def test_a_policy_close_is_not_retried() -> None:
    reconnector = Reconnector(Backoff(), max_attempts=10, rand=middle)
    assert reconnector.next_delay(LostReason.REFUSED) is None


# ---------------------------------------------------------------- heartbeat


def test_heartbeat_pings_every_interval_while_pongs_come_back() -> None:
    beat = Heartbeat(interval_s=30, timeout_s=5)
    beat.start(now=100)
    assert beat.poll(129.9) is Beat.NONE
    assert beat.next_wakeup() == 130
    assert beat.poll(130) is Beat.PING
    assert beat.awaiting_pong and beat.next_wakeup() == 135
    assert beat.poll(131) is Beat.NONE  # one ping at a time
    beat.pong()
    assert beat.next_wakeup() == 160
    assert beat.poll(159) is Beat.NONE
    assert beat.poll(160) is Beat.PING


def test_no_pong_within_the_timeout_means_dead() -> None:
    beat = Heartbeat(interval_s=30, timeout_s=5)
    beat.start(now=0)
    assert beat.poll(30) is Beat.PING
    assert beat.poll(34.9) is Beat.NONE
    assert beat.poll(35) is Beat.DEAD
    assert beat.poll(36) is Beat.DEAD


def test_a_new_connection_restarts_the_heartbeat() -> None:
    beat = Heartbeat(interval_s=1, timeout_s=1)
    beat.start(now=0)
    assert beat.poll(1) is Beat.PING
    beat.start(now=10)
    assert not beat.awaiting_pong
    assert beat.poll(10.5) is Beat.NONE and beat.poll(11) is Beat.PING


# ---------------------------------------------------------------- outbox


def msg(n: int) -> OutgoingMessage:
    return OutgoingMessage(f"m{n}", f"text {n}")


def test_outbox_keeps_the_newest_50_and_reports_the_dropped() -> None:
    outbox = Outbox(limit=50)
    dropped = [d for n in range(53) for d in outbox.add(msg(n))]
    assert dropped == [msg(0), msg(1), msg(2)]
    assert len(outbox) == 50
    assert [m.id for m in outbox.pending()] == [f"m{n}" for n in range(3, 53)]


def test_a_message_leaves_the_outbox_only_on_its_ack() -> None:
    outbox = Outbox(limit=50)
    outbox.add(msg(1))
    outbox.add(msg(2))
    assert outbox.to_send(now=0) == [msg(1), msg(2)]
    assert outbox.to_send(now=0) == []  # already on this connection
    assert len(outbox) == 2
    # The connection died before the acks: both go again, in order, on the next one.
    outbox.new_connection()
    assert outbox.to_send(now=1) == [msg(1), msg(2)]
    assert outbox.ack("m1") is True
    assert outbox.ack("m1") is False  # a second ack (for a resend) changes nothing
    assert outbox.ack("unknown") is False
    outbox.new_connection()
    assert outbox.to_send(now=2) == [msg(2)]


def test_an_invalid_message_is_dropped_and_a_rate_limited_one_resent_later() -> None:
    outbox = Outbox(limit=50)
    for n in (1, 2, 3):
        outbox.add(msg(n))
    outbox.to_send(now=0)
    assert outbox.refused("m1", "invalid_message", now=0, resend_after_s=2) == "drop"
    assert outbox.refused("m2", "rate_limited", now=0, resend_after_s=2) == "resend"
    assert outbox.refused("nope", "rate_limited", now=0, resend_after_s=2) == "ignore"
    assert [m.id for m in outbox.pending()] == ["m2", "m3"]
    assert outbox.next_resend() == 2
    # m3 was already sent; m2 waits for its turn again.
    assert outbox.to_send(now=1) == []
    assert outbox.to_send(now=2) == [msg(2)]
    assert outbox.next_resend() is None


def test_a_waiting_message_holds_back_the_ones_written_after_it() -> None:
    outbox = Outbox(limit=50)
    outbox.add(msg(1))
    outbox.to_send(now=0)
    outbox.refused("m1", "internal", now=0, resend_after_s=1)
    outbox.add(msg(2))
    assert outbox.to_send(now=0.5) == []
    assert outbox.to_send(now=1) == [msg(1), msg(2)]


def test_the_outbox_survives_a_restart_through_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    outbox = Outbox(limit=50, messages=[msg(1), msg(2)])
    state_file.save(path, state_file.SavedState("session-1", 7, outbox.pending()))
    saved = state_file.load(path)
    assert saved == state_file.SavedState("session-1", 7, [msg(1), msg(2)])
    assert state_file.load(tmp_path / "missing.json") == state_file.SavedState()
    (tmp_path / "bad.json").write_text("{not json")
    assert state_file.load(tmp_path / "bad.json") == state_file.SavedState()


# ---------------------------------------------------------------- seq order


def test_each_event_is_applied_once_in_seq_order() -> None:
    tracker = SeqTracker(last=0)
    applied = []
    for seq in [1, 2, 2, 1, 3, 4, 3]:
        verdict = tracker.check(seq)
        if verdict is Verdict.APPLY:
            tracker.applied(seq)
            applied.append(seq)
        else:
            assert verdict is Verdict.DUPLICATE
    assert applied == [1, 2, 3, 4]
    assert tracker.last == 4


def test_a_gap_is_not_applied() -> None:
    tracker = SeqTracker(last=4)
    assert tracker.check(6) is Verdict.GAP
    assert tracker.last == 4
    assert tracker.check(5) is Verdict.APPLY


def test_the_server_position_is_taken_when_none_is_known() -> None:
    tracker = SeqTracker(last=None)
    assert tracker.check(3) is Verdict.GAP  # nothing is applied before `connected`
    assert tracker.connected(server_last=12) is False
    assert tracker.last == 12
    assert tracker.connected(server_last=20) is False  # we resume from 12: 13.. will come
    assert tracker.last == 12


def test_a_server_behind_us_means_resume_from_its_position() -> None:
    tracker = SeqTracker(last=9)
    assert tracker.connected(server_last=3) is True
    assert tracker.last == 3
