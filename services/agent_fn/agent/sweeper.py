"""Finds turns nobody is working on any more and drives them again, or closes them.

A turn holds its session (`active_turn`) while an attempt runs, and the attempt beats
(`alive_until`, event_store.py). When the process running it dies, Pub/Sub is supposed to
deliver the turn again, but it may not: the push went to a connection that hangs, the message
ran out of delivery attempts on refusals, or it was acknowledged by a dying instance. The sweeper,
run on a schedule (Cloud Scheduler calls the `sweep_turns` entry point; devstack runs it too),
finds sessions whose active turn stopped beating (or whose lease ran out) and:

- publishes the turn again, unless its attempts are spent: the copy takes the session over at
  once, since the old attempt is not alive. It is published without an ordering key: the key's
  queue may be the very thing that is stuck behind the dead push, and ordering needs no key here,
  since the turn holds its session and nothing else can run in it;
- closes it with an `error` event and typing off when its attempts are spent, or when
  `sweep_max_redrives` publishes started no attempt (Pub/Sub is not delivering at all).

Every step is idempotent: the decision and its record are one transaction on the session and
the turn, and a sweep that dies after it only delays the publish to the next sweep.

A turn that was accepted but never started (its push lost, or held by Pub/Sub) holds no
session; the sweeper publishes it again after `sweep_unstarted_after_s` (3 min), and again
with backoff, until an attempt starts.

Bound (defaults): an attempt is taken for dead 3 heartbeats (30 s) after its last beat, and is
published again by the next sweep (every 60 s): driven again within 90 s, plus Pub/Sub's push.
With no attempt ever starting, it is closed after 3 more publishes 60 s apart: within 4.5 min.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from google.cloud import firestore

from deploychat.firestore_layout import SESSIONS, TURNS, events_ref, session_ref, turn_ref
from deploychat.turn_message import TurnRequest

from .event_store import attempt_alive
from .event_writes import run_transaction, session_log, store_events
from .settings import AgentSettings

log = logging.getLogger(__name__)

Publish = Callable[[TurnRequest], None]
Action = Literal["redriven", "closed", "cleared", "skipped"]


@dataclass
class SweepReport:
    redriven: list[str] = field(default_factory=list)  # "session/turn"
    closed: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)  # a finished turn still holding its session
    republished: list[str] = field(default_factory=list)  # accepted, never started
    errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "redriven": self.redriven,
            "closed": self.closed,
            "cleared": self.cleared,
            "republished": self.republished,
            "errors": self.errors,
        }


class TurnSweeper:
    def __init__(
        self,
        db: firestore.Client,
        settings: AgentSettings,
        publish: Publish | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._settings = settings
        self._publish = publish or PubSubRepublisher(settings)
        self._clock = clock

    def sweep(self) -> SweepReport:
        report = SweepReport()
        now = self._clock()
        for session_id in self._candidates(now):
            try:
                action, turn = self._sweep_session(session_id)
            except Exception:
                log.exception("sweeping session %s failed", session_id)
                report.errors += 1
                continue
            if action == "skipped" or turn is None:
                continue
            key = f"{session_id}/{turn}"
            getattr(report, action).append(key)
            if action == "redriven":
                try:
                    self._redrive(session_id, turn)
                except Exception:
                    # Recorded as tried: the next sweep after `sweep_retry_after_s` tries again.
                    log.exception("publishing stuck turn %s again failed", key)
                    report.errors += 1
        self._sweep_unstarted(now, report)
        if report.redriven or report.closed or report.cleared or report.republished:
            log.warning("sweep: %s", report.as_dict())
        return report

    # ---------------------------------------------------------------- never started

    def _sweep_unstarted(self, now: float, report: SweepReport) -> None:
        """Turns the edge accepted (and acknowledged to the client) that no attempt has ever
        started: their push was lost, or Pub/Sub holds it. They hold no session, so nothing
        else notices them. Each is published again (no ordering key: a copy that comes before
        an earlier turn of its session waits for it, event_store.py), then again after
        `sweep_retry_after_s`, doubling up to 15 minutes. Never closed: a copy may still be on
        its way, and a turn that starts late is still answered in order."""
        cutoff = now - self._settings.sweep_unstarted_after_s
        query = (
            self._db.collection_group(TURNS)
            .where(filter=firestore.FieldFilter("status", "==", "accepted"))
            .where(filter=firestore.FieldFilter("accepted_at", "<", cutoff))
            .limit(self._settings.sweep_batch)
        )
        for snap in query.stream():
            session_ref_ = snap.reference.parent.parent
            if session_ref_ is None or not snap.id.startswith("t-"):
                continue
            session_id, turn_id = session_ref_.id, snap.id[2:]
            key = f"{session_id}/{turn_id}"
            try:
                turn = run_transaction(self._db, self._decide_unstarted, session_id, turn_id)
                if turn is not None:
                    self._publish(turn)
                    report.republished.append(key)
            except Exception:
                # Recorded as tried (or not at all): a later sweep tries again.
                log.exception("publishing never-started turn %s again failed", key)
                report.errors += 1

    def _decide_unstarted(
        self, txn: firestore.Transaction, session_id: str, turn_id: str
    ) -> TurnRequest | None:
        now = self._clock()
        doc = turn_ref(self._db, session_id, turn_id)
        turn = _data(doc.get(transaction=txn))
        if turn.get("status") != "accepted" or turn.get("attempts"):
            return None  # started (or finished) since the query
        redrive = turn.get("redrive") or {}
        count = int(redrive.get("count", 0))
        wait = min(self._settings.sweep_retry_after_s * 2 ** max(0, count - 1), 900.0)
        if count and float(redrive.get("at", 0)) > now - wait:
            return None
        content = turn.get("content")
        if not isinstance(content, str):
            raise LookupError(f"turn {session_id}/{turn_id} has no content to publish")
        # `attempts: 0`: once an attempt starts, the started-turn rules count afresh.
        txn.set(doc, {"redrive": {"attempts": 0, "count": count + 1, "at": now}}, merge=True)
        return TurnRequest(
            session_id=session_id,
            turn_id=turn_id,
            content=content,
            accepted_at=float(turn.get("accepted_at", now)),
        )

    # ---------------------------------------------------------------- started, then lost

    def _candidates(self, now: float) -> list[str]:
        """Sessions whose active turn stopped beating, or (attempts without beats) expired."""
        sessions = self._db.collection(SESSIONS)
        limit = self._settings.sweep_batch
        found: dict[str, None] = {}
        for path in ("active_turn.alive_until", "active_turn.expires_at"):
            query = sessions.where(filter=firestore.FieldFilter(path, "<", now)).limit(limit)
            for snap in query.select([]).stream():
                found[snap.id] = None
        return list(found)[:limit]

    def _sweep_session(self, session_id: str) -> tuple[Action, str | None]:
        result: tuple[Action, str | None] = run_transaction(self._db, self._decide, session_id)
        return result

    def _decide(self, txn: firestore.Transaction, session_id: str) -> tuple[Action, str | None]:
        now = self._clock()
        session_doc = session_ref(self._db, session_id)
        session = _data(session_doc.get(transaction=txn))
        active = session.get("active_turn") or {}
        turn_id = active.get("turn_id")
        if not isinstance(turn_id, str) or attempt_alive(active, now):
            return "skipped", None
        if "alive_until" not in active and active.get("expires_at", 0) > now:
            return "skipped", None  # an attempt without heartbeats whose lease still holds
        if active.get("redrive_until", 0) > now:
            return "skipped", None  # published again lately: its copy is on the way
        turn_doc = turn_ref(self._db, session_id, turn_id)
        turn = _data(turn_doc.get(transaction=txn))
        if turn.get("status") in ("done", "abandoned"):
            txn.update(session_doc, {"active_turn": firestore.DELETE_FIELD})
            return "cleared", turn_id
        attempts = int(turn.get("attempts", 0))
        redrive = turn.get("redrive") or {}
        # Publishes since the last attempt started: they count only while no attempt comes.
        unanswered = int(redrive.get("count", 0)) if redrive.get("attempts") == attempts else 0
        if (
            attempts >= self._settings.max_delivery_attempts
            or unanswered >= self._settings.sweep_max_redrives
        ):
            self._close(txn, session_id, session, turn, turn_id, now)
            return "closed", turn_id
        txn.update(
            session_doc, {"active_turn.redrive_until": now + self._settings.sweep_retry_after_s}
        )
        txn.set(
            turn_doc,
            {"redrive": {"attempts": attempts, "count": unanswered + 1, "at": now}},
            merge=True,
        )
        return "redriven", turn_id

    def _close(
        self,
        txn: firestore.Transaction,
        session_id: str,
        session: dict[str, Any],
        turn: dict[str, Any],
        turn_id: str,
        now: float,
    ) -> None:
        drafts: list[dict[str, Any]] = [
            {
                "type": "error",
                "turn_id": turn_id,
                "code": "agent_failed",
                "message": "This turn stopped: the agent working on it was lost, and retries "
                "did not finish it. Send it again.",
                "retryable": True,
            }
        ]
        if turn.get("typing_on", True):
            drafts.append({"type": "typing", "turn_id": turn_id, "is_typing": False})
        ttl_s = self._settings.session_ttl_days * 86400
        tail: list[dict[str, Any]] = []
        seq = store_events(
            txn, self._db, session_id, int(session.get("last_seq", 0)), drafts, now, ttl_s, tail
        )
        txn.update(
            session_ref(self._db, session_id),
            {**session_log(seq, tail), "updated_at": now, "active_turn": firestore.DELETE_FIELD},
        )
        txn.set(
            turn_ref(self._db, session_id, turn_id),
            {"status": "abandoned", "failed": "agent_failed", "finished_at": now, "lease": None},
            merge=True,
        )
        log.error("turn %s/%s closed by the sweeper", session_id, turn_id)

    def _redrive(self, session_id: str, turn_id: str) -> None:
        """Publish the turn again, its content read back from the stored user message."""
        query = (
            events_ref(self._db, session_id)
            .where(filter=firestore.FieldFilter("message_id", "==", turn_id))
            .limit(5)
        )
        user = next(
            (d for s in query.stream() if (d := s.to_dict() or {}).get("role") == "user"), None
        )
        if user is None:
            # Cannot happen (the message is stored with the lease); the attempts rule closes it.
            raise LookupError(f"turn {session_id}/{turn_id} has no stored user message")
        self._publish(
            TurnRequest(
                session_id=session_id,
                turn_id=turn_id,
                content=str(user["content"]),
                accepted_at=float(user.get("ts", self._clock())),
            )
        )


class PubSubRepublisher:
    """Publishes turns to the turns topic (no ordering key: see the module's docstring)."""

    def __init__(self, settings: AgentSettings, client: Any = None) -> None:
        self._settings = settings
        self._client = client

    def __call__(self, turn: TurnRequest) -> None:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined,unused-ignore]

        if self._client is None:
            self._client = pubsub_v1.PublisherClient()
        topic = self._client.topic_path(self._settings.project_id, self._settings.turns_topic)
        data, attributes = turn.to_pubsub()
        attributes["redrive"] = "sweeper"
        self._client.publish(topic, data, **attributes).result(timeout=30)


def _data(snapshot: Any) -> dict[str, Any]:
    return (snapshot.to_dict() or {}) if snapshot.exists else {}
