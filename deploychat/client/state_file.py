"""The client's memory between runs: session id, last applied seq, unacknowledged messages."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .engine import OutgoingMessage

log = logging.getLogger(__name__)


@dataclass
class SavedState:
    session_id: str | None = None
    last_seq: int | None = None
    outbox: list[OutgoingMessage] = field(default_factory=list)


def load(path: Path) -> SavedState:
    """What was saved, or an empty state if there is nothing (or nothing readable)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return SavedState()
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable state file %s: %s", path, exc)
        return SavedState()
    if not isinstance(raw, dict):
        return SavedState()
    session_id = raw.get("session_id")
    last_seq = raw.get("last_seq")
    outbox = [
        OutgoingMessage(str(m["id"]), str(m["content"]))
        for m in raw.get("outbox") or []
        if isinstance(m, dict) and m.get("id") and m.get("content")
    ]
    return SavedState(
        session_id=session_id if isinstance(session_id, str) else None,
        last_seq=last_seq if isinstance(last_seq, int) and last_seq >= 0 else None,
        outbox=outbox,
    )


def save(path: Path, state: SavedState) -> None:
    # Written aside and renamed over: a crash mid-write leaves the previous state, not half
    # of a file that would lose the session.
    data = {
        "session_id": state.session_id,
        "last_seq": state.last_seq,
        "outbox": [{"id": m.id, "content": m.content} for m in state.outbox],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
