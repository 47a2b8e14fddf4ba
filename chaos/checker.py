"""Checks every session's log against the protocol's promises, knowing nothing but PROTOCOL.md.

For each session, from its replay from 0 (and what its client saw live):
- `seq` is 1..n, no gap, no repeat;
- every acked turn has exactly one user message and exactly one final assistant message (or,
  failing, an `error` event; counted apart: the target is none);
- turns do not interleave: once the next turn's events start, the earlier one says nothing
  more (deployment events excepted, as PROTOCOL.md allows);
- turns are answered in the order they were acked;
- what the client saw live equals the replay.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .client import Frame, SessionLog

DEPLOYMENT_EVENTS = {"deployment_update", "deployment_complete"}


@dataclass
class Verdict:
    sent: int = 0
    acked: int = 0
    answered: int = 0  # exactly one final assistant message
    errored: int = 0  # ended with an error event and no final
    lost: int = 0  # acked, and not in the log at all
    duplicated: int = 0  # a second user message or final, or an event twice
    reordered: int = 0  # answered out of ack order, or interleaved with another turn
    stuck: int = 0  # in the log, never ended
    gaps: int = 0  # seq gaps in a replay or a live view
    live_mismatch: int = 0  # sessions whose live view differs from the replay
    sessions: int = 0
    events: int = 0
    problems: list[str] = field(default_factory=list)

    def failures(self) -> int:
        return (
            self.lost
            + self.duplicated
            + self.reordered
            + self.stuck
            + self.gaps
            + self.live_mismatch
            + self.errored
        )

    def note(self, problem: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(problem)


def check(logs: list[tuple[SessionLog, list[Frame] | None]]) -> Verdict:
    verdict = Verdict()
    for log, replayed in logs:
        verdict.sessions += 1
        verdict.sent += sum(1 for t in log.turns if t.sent)
        verdict.acked += sum(1 for t in log.turns if t.acked)
        if replayed is None:
            # No replay (the session never opened): its acked turns cannot be found.
            verdict.lost += sum(1 for t in log.turns if t.acked)
            verdict.note(f"session {log.index}: no replay ({log.failure})")
            continue
        check_session(log, replayed, verdict)
    return verdict


def check_session(log: SessionLog, events: list[Frame], verdict: Verdict) -> None:
    name = log.session_id
    verdict.events += len(events)
    seqs = [int(e["seq"]) for e in events]
    if seqs != list(range(1, len(seqs) + 1)):
        verdict.gaps += 1
        verdict.note(f"{name}: replay seqs are not 1..n: {seqs[:40]}")
    repeats = sum(n - 1 for n in Counter(seqs).values() if n > 1)
    verdict.duplicated += repeats
    # The live view: every event applied once, in order, equal to the stored one.
    verdict.gaps += log.gaps
    verdict.duplicated += log.repeats
    by_seq = {int(e["seq"]): e for e in events}
    live_differs = any(by_seq.get(seq) != frame for seq, frame in log.live.items())
    if live_differs or set(log.live) != set(range(1, log.last_seq + 1)):
        verdict.live_mismatch += 1
        verdict.note(f"{name}: live view differs from the replay")

    users: Counter[str] = Counter()
    finals: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    ends: Counter[str] = Counter()
    order: list[str] = []  # turns in the order their events start
    closed: set[str] = set()
    current: str | None = None
    for event in events:
        turn = str(event.get("turn_id"))
        kind = event["type"]
        if kind in DEPLOYMENT_EVENTS:
            continue
        if turn != current:
            if turn in closed:
                verdict.reordered += 1
                verdict.note(f"{name}: turn {turn} speaks again after {current} started")
            if current is not None:
                closed.add(current)
            current = turn
            if turn not in order:
                order.append(turn)
        if kind == "chat" and event.get("role") == "user":
            users[turn] += 1
        elif kind == "chat" and event.get("final"):
            finals[turn] += 1
        elif kind == "error":
            errors[turn] += 1
        elif kind == "typing" and event.get("is_typing") is False:
            ends[turn] += 1

    for mine in log.turns:
        if not mine.acked:
            continue
        if users[mine.id] == 0:
            verdict.lost += 1
            verdict.note(f"{name}: acked turn {mine.id} is not in the log")
            continue
        if users[mine.id] > 1 or finals[mine.id] > 1 or ends[mine.id] > 1:
            verdict.duplicated += 1
            verdict.note(f"{name}: turn {mine.id} twice: {users[mine.id]}/{finals[mine.id]}")
        if finals[mine.id] == 1:
            verdict.answered += 1
        elif errors[mine.id]:
            verdict.errored += 1
            verdict.note(f"{name}: turn {mine.id} ended with an error")
        else:
            verdict.stuck += 1
            verdict.note(f"{name}: turn {mine.id} never ended")

    # Answered in ack order (a turn acked later never starts before one acked earlier).
    acked_order = [t for t in log.acks if t in users]
    started = [t for t in order if t in set(acked_order)]
    out_of_place = sum(1 for a, b in zip(started, acked_order, strict=False) if a != b)
    if out_of_place:
        verdict.reordered += out_of_place
        verdict.note(f"{name}: started {started[:10]}, acked {acked_order[:10]}")


def table(verdict: Verdict, faults: dict[str, int], extra: dict[str, Any]) -> str:
    """One table: the turns, the failures (target 0), and the faults injected by kind."""
    rows: list[tuple[str, Any]] = [
        ("sessions", verdict.sessions),
        ("turns sent", verdict.sent),
        ("turns acked", verdict.acked),
        ("answered (one final message)", verdict.answered),
        ("lost", verdict.lost),
        ("duplicated", verdict.duplicated),
        ("reordered or interleaved", verdict.reordered),
        ("stuck", verdict.stuck),
        ("ended with an error", verdict.errored),
        ("seq gaps (replay or live)", verdict.gaps),
        ("live view != replay", verdict.live_mismatch),
        ("stored events checked", verdict.events),
    ]
    rows += [(f"fault: {kind}", n) for kind, n in sorted(faults.items())]
    rows += list(extra.items())
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'what'.ljust(width)} | count |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v!s:>5} |" for k, v in rows]
    return "\n".join(lines)
