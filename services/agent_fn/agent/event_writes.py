"""Writing events and running transactions: what every append to a session's log is made of.

`store_events` gives drafts the session's next `seq` numbers and creates them in a transaction;
`run_transaction` runs a body in one, with Firestore's contention retries, and turns what the
client raises when Firestore stays busy into a TransientError (Pub/Sub delivers again).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from pydantic import ValidationError

from deploychat.errors import PermanentError, TransientError
from deploychat.firestore_layout import event_doc_id, events_ref
from deploychat.protocol import SESSION_EVENT

EventDraft = dict[str, Any]  # a stored event without `seq`, `ts` (given here)

# The session document's `tail` holds the events of its last append, up to this size, so that
# the edges, which listen to the session document, get them without another read. Firestore
# allows 1 MiB a document; the session document is read in every append.
TAIL_BYTES = 16 * 1024


def store_events(
    txn: firestore.Transaction,
    db: firestore.Client,
    session_id: str,
    seq: int,
    drafts: list[EventDraft],
    now: float,
    ttl_s: float,
    tail: list[dict[str, Any]] | None = None,
) -> int:
    """Write `drafts` as the events after `seq` in `txn`; returns the new last seq.

    Public for appends outside a turn (agent/deployment_events.py), which read and update the
    session's `last_seq` in the same transaction, as turns do, and its `tail`: each event
    written is added to `tail`, for `session_log(seq, tail)`.
    """
    events = events_ref(db, session_id)
    for draft in drafts:
        seq += 1
        try:
            event = SESSION_EVENT.validate_python({**draft, "seq": seq, "ts": now})
        except ValidationError as exc:
            # Our own bug, never the user's: refuse to store an event the protocol forbids.
            raise PermanentError(f"refusing to store an invalid event: {exc}") from exc
        doc = event.model_dump(exclude_none=True)
        if tail is not None:
            tail.append(dict(doc))
        doc["expire_at"] = expiry(now, ttl_s)
        txn.create(events.document(event_doc_id(seq)), doc)
    return seq


def session_log(seq: int, tail: list[dict[str, Any]]) -> dict[str, Any]:
    """The session document's fields after an append: `last_seq`, and the newest events of the
    append in `tail` (oldest first, at most TAIL_BYTES, possibly none: the edges read by seq
    whatever the tail lacks). A tail is replaced, never merged: it is only a shortcut."""
    kept: list[dict[str, Any]] = []
    size = 0
    for doc in reversed(tail):
        size += len(json.dumps(doc, default=str))
        if size > TAIL_BYTES:
            break
        kept.append(doc)
    return {"last_seq": seq, "tail": list(reversed(kept))}


def run_transaction(db: firestore.Client, body: Callable[..., Any], *args: Any) -> Any:
    """`body(txn, *args)` in a transaction, contention retried, as every append is run."""
    return _run(db, body, *args)


def _run(db: firestore.Client, body: Callable[..., Any], *args: Any) -> Any:
    """`body(txn, *args)` in a transaction; Firestore retries it on contention."""

    @firestore.transactional
    def in_transaction(txn: firestore.Transaction) -> Any:
        return body(txn, *args)

    try:
        return in_transaction(db.transaction(max_attempts=10))
    except (gexc.Aborted, gexc.DeadlineExceeded, gexc.ServiceUnavailable) as exc:
        raise TransientError(f"Firestore is busy: {exc}") from exc
    except ValueError as exc:
        # What the client raises when contention outlasts its attempts; nothing was written.
        if "Failed to commit transaction" in str(exc):
            raise TransientError(str(exc)) from exc
        raise


def snapshot_data(snapshot: Any) -> dict[str, Any]:
    return (snapshot.to_dict() or {}) if snapshot.exists else {}


def expiry(now: float, ttl_s: float) -> Any:
    """When a document may be deleted: a real timestamp, as Firestore's TTL policies require."""
    return datetime.datetime.fromtimestamp(now + ttl_s, tz=datetime.UTC)
