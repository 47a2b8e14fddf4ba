"""What the model is told of the session: earlier messages (compacted) and the session's state."""

from __future__ import annotations

from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from deploychat.firestore_layout import events_ref

from .model import HistoryMessage

# Roughly 4 characters a token: the history stays well inside the model's context and bill.
HISTORY_CHAR_BUDGET = 24_000
MESSAGE_CHAR_LIMIT = 4_000


def read_history(
    db: firestore.Client, session_id: str, turn_id: str, limit: int
) -> list[HistoryMessage]:
    """The session's last `limit` final messages before this turn, oldest first, compacted."""
    if limit == 0:
        return []
    query = (
        events_ref(db, session_id)
        .where(filter=FieldFilter("final", "==", True))
        .order_by("seq", direction=firestore.Query.DESCENDING)
        .limit(limit)
    )
    newest_first = []
    for snap in query.stream():
        doc = snap.to_dict() or {}
        role, content = doc.get("role"), doc.get("content")
        if doc.get("turn_id") == turn_id or not content or role not in ("user", "assistant"):
            continue
        newest_first.append(HistoryMessage(role=role, text=str(content)))
    return compact(list(reversed(newest_first)))


def compact(messages: list[HistoryMessage]) -> list[HistoryMessage]:
    """Keep the newest messages within the budget; long ones are cut, older ones summarised."""
    kept: list[HistoryMessage] = []
    used = 0
    for message in reversed(messages):
        text = message.text
        if len(text) > MESSAGE_CHAR_LIMIT:
            text = text[:MESSAGE_CHAR_LIMIT] + " […]"
        if used + len(text) > HISTORY_CHAR_BUDGET:
            break
        kept.append(HistoryMessage(role=message.role, text=text))
        used += len(text)
    kept.reverse()
    dropped = len(messages) - len(kept)
    if dropped:
        # The API wants turns to alternate starting with the user; a note keeps that shape.
        note = f"(Earlier in this conversation: {dropped} messages, left out for length.)"
        kept.insert(0, HistoryMessage(role="user", text=note))
        if len(kept) > 1 and kept[1].role == "user":
            kept.insert(1, HistoryMessage(role="assistant", text="Understood."))
    return kept


def session_notes(session: dict[str, Any]) -> list[str]:
    """The session's state in words, for the system instruction."""
    notes = []
    workspace = session.get("workspace") or {}
    analysis = workspace.get("analysis")
    if analysis:
        notes.append(
            f"The last repository analysed is {workspace.get('source')}: {analysis.get('name')}, "
            f"a {analysis.get('language')} {analysis.get('framework')} app started with "
            f"`{analysis.get('start_command')}`."
        )
    if workspace.get("dockerfile"):
        notes.append("A Dockerfile was generated for it earlier in this session.")
    pending = session.get("pending_deployment")
    if pending:
        confirm = pending.get("confirm", {})
        notes.append(
            f"A deployment of {confirm.get('app')} to {confirm.get('target')} awaits the user's "
            "confirmation: they confirm by answering yes (handled without you)."
        )
    return notes
