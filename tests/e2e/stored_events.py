"""Writes session events into Firestore the way the agent does, for what the agent cannot
emit yet on demand (analyses, deployments) and for a conversation staged for a screenshot."""

from __future__ import annotations

import time
from typing import Any

from google.cloud import firestore

from deploychat.firestore_layout import event_doc_id, events_ref, session_ref
from deploychat.protocol import SESSION_EVENT
from devstack.stack import Stack


def append_events(stack: Stack, session_id: str, drafts: list[dict[str, Any]]) -> int:
    """Store `drafts` (events without seq) after the session's last; returns the new last seq."""
    db = firestore.Client(project=stack.config.project)
    session = session_ref(db, session_id)
    last = int((session.get().to_dict() or {}).get("last_seq", 0))
    batch = db.batch()
    now = time.time()
    for seq, draft in enumerate(drafts, start=last + 1):
        event = SESSION_EVENT.validate_python({**draft, "seq": seq, "ts": now})
        batch.create(
            events_ref(db, session_id).document(event_doc_id(seq)),
            event.model_dump(exclude_none=True),
        )
    batch.set(session, {"last_seq": last + len(drafts), "updated_at": now}, merge=True)
    batch.commit()
    return last + len(drafts)
