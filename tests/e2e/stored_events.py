"""Writes session events into Firestore the way the agent does, for what the agent cannot
emit yet on demand (analyses, deployments) and for a conversation staged for a screenshot.

The append is the agent's own (`store_events` in a transaction that reads and updates the
session's `last_seq` and `tail`), so it serialises with the turns the page's own frames start:
a click that answers a card runs a real turn, which appends at the same time.
"""

from __future__ import annotations

import time
from typing import Any

from google.cloud import firestore

from agent.event_writes import run_transaction, session_log, store_events
from deploychat.firestore_layout import session_ref
from devstack.stack import Stack

# Long enough that a staged event never expires during a test.
_TTL_S = 24 * 3600.0


def append_events(stack: Stack, session_id: str, drafts: list[dict[str, Any]]) -> int:
    """Store `drafts` (events without seq) after the session's last; returns the new last seq."""
    db = firestore.Client(project=stack.config.project)
    session = session_ref(db, session_id)

    def body(txn: firestore.Transaction) -> int:
        snap = session.get(transaction=txn)
        last = int((snap.to_dict() or {}).get("last_seq", 0))
        now = time.time()
        tail: list[dict[str, Any]] = []
        seq = store_events(txn, db, session_id, last, drafts, now, _TTL_S, tail)
        txn.set(session, {**session_log(seq, tail), "updated_at": now}, merge=True)
        return seq

    return int(run_transaction(db, body))
