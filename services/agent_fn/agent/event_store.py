"""Appends one turn's events to its session: each once, in `seq` order, fenced by a lease.

Every append is one Firestore transaction that reads the session and the turn, gives the events
the next `seq` numbers, writes them, and records the turn's progress. So a process that dies at
any line leaves either all of an append or none of it, and the retry, which reads the progress,
neither repeats what is stored nor leaves a gap.

Turns of one session never interleave: a turn holds the session (`active_turn`) from `begin` to
its last append. Another turn that arrives meanwhile is refused with a transient error, so Pub/Sub
delivers it again later. A redelivery of the same turn takes the session over with a new lease;
the older attempt, if it is still running somewhere, fails its next append and stops writing.

With a heartbeat, an attempt also says it is alive (`active_turn.alive_until`, renewed every
`heartbeat_s` from a thread of its own, whatever the turn is waiting on). A copy of the turn that
arrives while the attempt is alive (Pub/Sub's redelivery past the ack deadline, a duplicate
publish) is not an attempt and counts as none: it waits, a few beats at most, for the attempt to
finish (then it is a duplicate, acknowledged) or to stop beating (its process died: the copy
takes over); if the attempt is still alive after that, the copy is refused with `SessionBusy`.
Waiting rather than refusing at once matters: each refusal spends one of Pub/Sub's delivery
attempts, and a redelivery after a crash would otherwise run out of them before the dead
attempt's beats ran out. The sweeper (sweeper.py) finds the turn even if no copy ever comes.

Turns are answered in the order the edge acked them (PROTOCOL.md). The edge publishes each turn
with the session as its ordering key, and Pub/Sub then delivers a turn only after the session's
earlier turns were acknowledged. A copy published without the key (a duplicate publish, a copy
sent by hand, the sweeper's) carries no such promise. So such a copy, of a turn that has never
started, may start it only if no earlier turn of the session, accepted by the edge within
`hold_s`, is still waiting to start. Otherwise it raises `QueuedBehind`, at once, and the runner
acknowledges the copy and drops it: the turn stays `accepted`, so its own keyed delivery runs
it, or the sweeper publishes it again. `hold_s` is far longer than the lease, since a busy
Pub/Sub may keep the earlier turn queued for many minutes. Past `hold_s` the earlier turn is
taken for lost and holds nothing back, and so does a turn whose publish failed (the edge marks
it `unpublished`; the client got no ack) until the client sends it again. Keyed deliveries are
never held back: Pub/Sub's order for one key is the order of the publishes, which across two
edges (two tabs) may differ from the order of the accepts, and holding a keyed turn back behind
one queued after it on that key would deadlock.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from google.api_core import exceptions as gexc
from google.cloud import firestore

from deploychat.errors import TransientError
from deploychat.firestore_layout import session_ref, turn_ref

from .event_writes import (
    EventDraft,
    expiry,
    run_transaction,
    session_log,
    snapshot_data,
    store_events,
)

log = logging.getLogger(__name__)

Write = tuple[Literal["create", "merge"], Any, dict[str, Any]]


@dataclass
class Prepared:
    """What a `prepare` hook adds to an append: more events and document writes."""

    drafts: list[EventDraft] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)


Prepare = Callable[[firestore.Transaction, dict[str, Any], dict[str, Any]], Prepared]


class SessionBusy(TransientError):
    """Another turn of the session (or another live attempt at this one) is running."""


class RunningElsewhere(SessionBusy):
    """A live attempt at this very turn is running (this one is a copy)."""


class QueuedBehind(SessionBusy):
    """An earlier turn of the session waits to start; this one must not go before it."""


# How many of a session's waiting turns one begin reads; more than a client ever queues.
QUEUED_TURNS_READ = 50


# An attempt that missed this many heartbeats in a row is taken for dead.
MISSED_BEATS = 3


def attempt_alive(active: dict[str, Any], now: float) -> bool:
    """Whether the session's active turn has an attempt that is known to be alive."""
    alive_until = active.get("alive_until")
    return (
        isinstance(alive_until, int | float)
        and alive_until > now
        and active.get("expires_at", 0) > now
    )


class LeaseLost(Exception):
    """A newer attempt at this turn took over; this attempt must stop writing at once."""


@dataclass(frozen=True)
class TurnProgress:
    lease: str
    attempts: int
    user_stored: bool
    typing_on: bool
    emitted_text: str
    cancel_requested: bool
    tools: dict[str, Any]  # outcomes of the tool calls already made, by call key
    # The session document as this attempt found it (before its own writes).
    session: dict[str, Any] = field(default_factory=dict)


# What `begin` stores with the lease: events and turn progress, decided from the progress found.
Opening = Callable[[TurnProgress], tuple[list[EventDraft], dict[str, Any]]]


class TurnLog:
    def __init__(
        self,
        db: firestore.Client,
        session_id: str,
        turn_id: str,
        *,
        lease_s: float,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
        heartbeat_s: float | None = None,
        ordered: bool = True,
        hold_s: float | None = None,
    ) -> None:
        """`ordered`: delivered with its ordering key (see the module's docstring). `hold_s`:
        how long an earlier turn that never started holds back an unkeyed copy (default
        `lease_s`)."""
        self._db = db
        self._hold_s = lease_s if hold_s is None else hold_s
        self._ordered = ordered
        self.session_id = session_id
        self.turn_id = turn_id
        self._lease_s = lease_s
        self._ttl_s = ttl_s
        self._clock = clock
        self._session = session_ref(db, session_id)
        self._turn = turn_ref(db, session_id, turn_id)
        self._lease: str | None = None
        self._heartbeat_s = heartbeat_s
        self._beating = threading.Event()  # set: the heartbeat must stop
        self._renewed = 0.0  # monotonic time of the last write that renewed `alive_until`

    # ------------------------------------------------------------------ begin

    def begin(self, opening: Opening | None = None) -> TurnProgress | None:
        """Take the session for this turn. None if the turn is already finished (a duplicate).

        `opening(progress)`, if given, returns the first events and progress to store in the
        same transaction (the user's message and typing, unless an earlier attempt stored them):
        one commit before the model is asked, not two.
        """
        lease = uuid.uuid4().hex
        # A copy of a live attempt waits this long for it to finish or to die (see above), and
        # so does the session's next turn for the one before it: refusals spend Pub/Sub's
        # delivery attempts, and a turn that runs out of them is dead-lettered, lost.
        wait_s = (MISSED_BEATS + 1) * self._heartbeat_s if self._heartbeat_s else 0.0
        deadline = time.monotonic() + wait_s
        while True:
            try:
                progress: TurnProgress | None = run_transaction(
                    self._db, self._begin, lease, opening
                )
                break
            except QueuedBehind:
                raise  # not worth waiting for: the earlier turn may be queued for minutes
            except SessionBusy:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._heartbeat_s:
                    raise
                time.sleep(min(self._heartbeat_s, remaining))
        if progress is not None:
            self._lease = lease
            self._renewed = time.monotonic()
            if self._heartbeat_s:
                threading.Thread(
                    target=self._beat, daemon=True, name=f"heartbeat-{self.turn_id}"
                ).start()
        return progress

    def end(self) -> None:
        """This attempt stops (finished, fenced out, or failing for a retry): stop beating.

        An unfinished turn is marked not alive at once, so that Pub/Sub's retry of it takes
        over without waiting for the missed beats.
        """
        self._beating.set()
        lease, self._lease = self._lease, None
        if lease is None or not self._heartbeat_s:
            return
        try:
            snap = self._session.get()
            active = snapshot_data(snap).get("active_turn") or {}
            if active.get("lease") == lease:
                self._session.update(
                    {"active_turn.alive_until": self._clock()},
                    option=self._db.write_option(last_update_time=snap.update_time),
                )
        except Exception as exc:  # a missed release only costs the wait for the missed beats
            log.info("turn %s: could not release its lease: %s", self.turn_id, exc)

    def _alive_until(self, now: float) -> dict[str, float]:
        if not self._heartbeat_s:
            return {}
        return {"alive_until": now + MISSED_BEATS * self._heartbeat_s}

    def _beat(self) -> None:
        """Renew `alive_until` while this attempt runs, unless an append just did."""
        assert self._heartbeat_s
        while not self._beating.wait(self._heartbeat_s / 2):
            lease = self._lease
            if lease is None:
                return
            if time.monotonic() - self._renewed < self._heartbeat_s:
                continue
            try:
                snap = self._session.get()
                active = snapshot_data(snap).get("active_turn") or {}
                if active.get("lease") != lease:
                    return  # finished, or fenced out by a newer attempt
                # Only if nothing changed the session since it was read (an append renews too).
                self._session.update(
                    {"active_turn.alive_until": self._alive_until(self._clock())["alive_until"]},
                    option=self._db.write_option(last_update_time=snap.update_time),
                )
                self._renewed = time.monotonic()
            except gexc.FailedPrecondition:
                continue  # the session changed meanwhile; the next beat tries again
            except Exception as exc:
                log.warning("turn %s: heartbeat failed: %s", self.turn_id, exc)

    def _begin(
        self, txn: firestore.Transaction, lease: str, opening: Opening | None
    ) -> TurnProgress | None:
        now = self._clock()
        session, turn = self._read(txn)
        if turn.get("status") in ("done", "abandoned"):
            return None
        active = session.get("active_turn") or {}
        other = active.get("turn_id")
        abandoned: dict[str, Any] | None = None
        if other == self.turn_id and attempt_alive(active, now):
            # A copy of a turn whose attempt is alive: not an attempt of its own.
            raise RunningElsewhere(f"turn {other} of session {self.session_id} runs elsewhere")
        if other and other != self.turn_id:
            if active.get("expires_at", 0) > now:
                raise SessionBusy(f"session {self.session_id} is busy with turn {other}")
            abandoned = active
        if not self._ordered and not turn.get("attempts"):
            self._check_not_queued_behind(txn, turn, now)
        seq = int(session.get("last_seq", 0))
        tail: list[dict[str, Any]] = []
        if abandoned is not None:
            # Its attempts are spent or its function died for good: close it for the clients
            # (so no turn is left "typing" forever) before this one starts.
            other_ref = turn_ref(self._db, self.session_id, abandoned["turn_id"])
            drafts: list[EventDraft] = [
                {
                    "type": "error",
                    "turn_id": abandoned["turn_id"],
                    "code": "agent_failed",
                    "message": "This turn was abandoned after its attempts failed.",
                    "retryable": False,
                },
                {"type": "typing", "turn_id": abandoned["turn_id"], "is_typing": False},
            ]
            seq = self._write_events(txn, seq, drafts, now, tail)
            txn.set(other_ref, {"status": "abandoned", "finished_at": now}, merge=True)
            log.warning("turn %s of session %s abandoned", abandoned["turn_id"], self.session_id)
        attempts = int(turn.get("attempts", 0)) + 1
        progress = TurnProgress(
            lease=lease,
            attempts=attempts,
            user_stored=bool(turn.get("user_stored")),
            typing_on=bool(turn.get("typing_on")),
            emitted_text=str(turn.get("emitted_text", "")),
            cancel_requested=bool(turn.get("cancel_requested")),
            tools=dict(turn.get("tools") or {}),
            session=session,
        )
        opened: dict[str, Any] = {}
        if opening is not None:
            drafts, opened = opening(progress)
            seq = self._write_events(txn, seq, drafts, now, tail)
        txn.set(
            self._turn,
            {
                **opened,
                "turn_id": self.turn_id,
                "status": "running",
                "lease": lease,
                "attempts": attempts,
                "started_at": turn.get("started_at", now),
                "expire_at": expiry(now, self._ttl_s),
            },
            merge=True,
        )
        # The tail is replaced only by an append, so a begin without events leaves it be.
        log_fields = session_log(seq, tail) if tail else {"last_seq": seq}
        txn.set(
            self._session,
            {
                **log_fields,
                "active_turn": {
                    "turn_id": self.turn_id,
                    "lease": lease,
                    "expires_at": now + self._lease_s,
                    **self._alive_until(now),
                },
                "updated_at": now,
                "expire_at": expiry(now, self._ttl_s),
            },
            merge=True,
        )
        return progress

    def _check_not_queued_behind(
        self, txn: firestore.Transaction, turn: dict[str, Any], now: float
    ) -> None:
        """Raise QueuedBehind if an earlier turn of the session waits to start (see above)."""
        mine = turn.get("accepted_at")
        if not isinstance(mine, int | float):
            return  # no record of the edge's: nothing to order it by
        # One equality filter (a single-field index); the order is checked here, not queried,
        # so no composite index is needed.
        query = (
            self._turn.parent.where(filter=firestore.FieldFilter("status", "==", "accepted"))
            .select(["accepted_at"])
            .limit(QUEUED_TURNS_READ)
        )
        for snap in txn.get(query):
            if snap.reference.path == self._turn.path:
                continue
            accepted_at = (snap.to_dict() or {}).get("accepted_at")
            if isinstance(accepted_at, int | float) and now - self._hold_s < accepted_at < mine:
                raise QueuedBehind(
                    f"turn {self.turn_id} of session {self.session_id} came before an earlier "
                    f"turn ({snap.id}) started"
                )

    # ------------------------------------------------------------------ append

    def append(
        self,
        drafts: list[EventDraft],
        progress: dict[str, Any],
        *,
        finish: bool = False,
        session_update: dict[str, Any] | None = None,
        prepare: Prepare | None = None,
    ) -> bool:
        """Store events and progress atomically; returns whether a cancel was requested.

        With `finish`, the turn is marked done and the session freed in the same transaction.
        `session_update` is merged into the session document. `prepare`, if given, runs inside
        the transaction after the session and turn are read: it may read other documents, raise
        to write nothing, or return more events and writes to make in the same commit.
        """
        if self._lease is None:
            raise RuntimeError("append before begin")
        result: bool = run_transaction(
            self._db,
            self._append,
            self._lease,
            drafts,
            progress,
            finish,
            session_update or {},
            prepare,
        )
        self._renewed = time.monotonic()
        if finish:
            self._beating.set()
        return result

    def _append(
        self,
        txn: firestore.Transaction,
        lease: str,
        drafts: list[EventDraft],
        progress: dict[str, Any],
        finish: bool,
        extra_session: dict[str, Any],
        prepare: Prepare | None,
    ) -> bool:
        now = self._clock()
        session, turn = self._read(txn)
        if turn.get("lease") != lease or turn.get("status") != "running":
            raise LeaseLost(f"turn {self.turn_id}: a newer attempt took over")
        writes: list[Write] = []
        if prepare is not None:
            prepared = prepare(txn, session, turn)
            drafts = [*drafts, *prepared.drafts]
            writes = prepared.writes
        tail: list[dict[str, Any]] = []
        seq = self._write_events(txn, int(session.get("last_seq", 0)), drafts, now, tail)
        for kind, ref, data in writes:
            if kind == "create":
                txn.create(ref, data)
            else:
                txn.set(ref, data, merge=True)
        log_fields = session_log(seq, tail) if tail else {"last_seq": seq}
        session_update: dict[str, Any] = {**extra_session, **log_fields, "updated_at": now}
        turn_update: dict[str, Any] = dict(progress)
        if finish:
            session_update["active_turn"] = firestore.DELETE_FIELD
            turn_update.update(status="done", finished_at=now)
        else:
            session_update["active_turn"] = {
                "turn_id": self.turn_id,
                "lease": lease,
                "expires_at": now + self._lease_s,
                **self._alive_until(now),
            }
        txn.update(self._session, session_update)
        if turn_update:
            txn.update(self._turn, turn_update)
        return bool(turn.get("cancel_requested"))

    def _read(self, txn: firestore.Transaction) -> tuple[dict[str, Any], dict[str, Any]]:
        """The session and the turn, read in the transaction with one request."""
        found = {
            snap.reference.path: snapshot_data(snap)
            for snap in txn.get_all([self._session, self._turn])
        }
        return found.get(self._session.path, {}), found.get(self._turn.path, {})

    @property
    def db(self) -> firestore.Client:
        return self._db

    def session_data(self) -> dict[str, Any]:
        return snapshot_data(self._session.get())

    def cancel_requested(self) -> bool:
        return bool(
            snapshot_data(self._turn.get(field_paths=["cancel_requested"])).get("cancel_requested")
        )

    def _write_events(
        self,
        txn: firestore.Transaction,
        seq: int,
        drafts: list[EventDraft],
        now: float,
        tail: list[dict[str, Any]],
    ) -> int:
        return store_events(txn, self._db, self.session_id, seq, drafts, now, self._ttl_s, tail)
