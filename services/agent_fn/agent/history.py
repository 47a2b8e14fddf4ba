"""What the model is told of the session: earlier messages, and a summary of what was done.

Earlier turns' tool calls are not replayed as calls (their results live on as session state):
the model gets, in its system instruction, a compact structured summary of what matters (the
last analysis, the Dockerfile, deployments and their URLs), and the conversation as text. Both
fit a token budget, the summary first. The conversation always alternates user and model
turns, starting with the user: a turn that failed gets a placeholder answer, so no two user
turns ever follow each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from deploychat.firestore_layout import events_ref

from .model import HistoryMessage

CHARS_PER_TOKEN = 4  # roughly, for English and code
MESSAGE_CHAR_LIMIT = 4_000
DOCKERFILE_CHAR_LIMIT = 3_000
RECENT_DEPLOYMENTS = 5
NO_ANSWER = "(No answer reached the user for this message: that turn failed.)"
STOPPED_EARLY = "(The user stopped this answer before it began.)"

# What the model is told of an analysis: enough to act on, not the evidence behind it.
_ANALYSIS_FIELDS = (
    "name",
    "language",
    "language_version",
    "framework",
    "package_manager",
    "start_command",
    "port",
    "reads_port_env",
    "dockerfile",
)


@dataclass(frozen=True)
class Said:
    """One stored final message."""

    turn_id: str
    role: str
    text: str
    stopped: bool = False  # an answer the user cancelled


def read_history(
    db: firestore.Client, session_id: str, turn_id: str, limit: int, char_budget: int
) -> list[HistoryMessage]:
    """The session's last `limit` final messages before this turn, oldest first, compacted."""
    if limit == 0 or char_budget <= 0:
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
        if doc.get("turn_id") == turn_id or role not in ("user", "assistant"):
            continue
        newest_first.append(
            Said(str(doc.get("turn_id")), role, str(content or ""), bool(doc.get("stopped")))
        )
    return compact(alternating(list(reversed(newest_first))), char_budget)


def alternating(said: list[Said]) -> list[HistoryMessage]:
    """User and model turns in strict alternation, starting with the user, ending with the
    model (the current message follows). An unanswered message gets a placeholder answer."""
    out: list[HistoryMessage] = []
    for item in said:
        if item.role == "user":
            if out and out[-1].role == "user":
                out.append(HistoryMessage("assistant", NO_ANSWER))
            out.append(HistoryMessage("user", item.text or "(empty message)"))
        elif not out:
            continue  # the window began mid-exchange
        elif out[-1].role == "assistant":
            out[-1] = HistoryMessage("assistant", f"{out[-1].text}\n\n{item.text}".strip())
        else:
            empty = STOPPED_EARLY if item.stopped else NO_ANSWER
            out.append(HistoryMessage("assistant", item.text or empty))
    if out and out[-1].role == "user":
        out.append(HistoryMessage("assistant", NO_ANSWER))
    return out


def compact(messages: list[HistoryMessage], char_budget: int) -> list[HistoryMessage]:
    """The newest exchanges within the budget; long messages cut, older ones left out (and
    said to be). `messages` alternate, starting with the user; so does the result."""
    kept: list[HistoryMessage] = []
    used = 0
    pairs = [messages[i : i + 2] for i in range(0, len(messages), 2)]
    for pair in reversed(pairs):
        cut = [HistoryMessage(m.role, _cut(m.text, MESSAGE_CHAR_LIMIT)) for m in pair]
        size = sum(len(m.text) for m in cut)
        if used + size > char_budget:
            break
        kept[:0] = cut
        used += size
    dropped = len(messages) - len(kept)
    if dropped:
        note = f"(Earlier in this conversation: {dropped} messages, left out for length.)"
        kept[:0] = [HistoryMessage("user", note), HistoryMessage("assistant", "Understood.")]
    return kept


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " […]"


# ---------------------------------------------------------------- the session's state


def read_deployments(db: firestore.Client, session_id: str) -> list[dict[str, Any]]:
    """The session's finished deployments, oldest first (an equality filter: no index)."""
    query = events_ref(db, session_id).where(
        filter=FieldFilter("type", "==", "deployment_complete")
    )
    found = [snap.to_dict() or {} for snap in query.stream()]
    # Document ids follow seq, but the order of an unordered query is not promised.
    return sorted(found, key=lambda d: int(d.get("seq", 0)))


def session_notes(
    session: dict[str, Any],
    deployments: list[dict[str, Any]] | None = None,
    char_budget: int | None = None,
) -> list[str]:
    """The session's state in words, for the system instruction, within `char_budget`."""
    notes = []
    workspace = session.get("workspace") or {}
    analysis = workspace.get("analysis")
    if analysis:
        facts = {k: analysis[k] for k in _ANALYSIS_FIELDS if analysis.get(k) is not None}
        env = [v.get("name") for v in analysis.get("env_vars") or [] if isinstance(v, dict)]
        if env:
            facts["env_vars"] = env[:12]
        notes.append(
            f"The last repository analysed is {workspace.get('source')}: "
            f"{json.dumps(facts, sort_keys=True)}."
        )
    dockerfile = workspace.get("dockerfile")
    if dockerfile:
        notes.append(
            "The Dockerfile generated for it earlier in this session (already shown to the "
            f"user):\n```dockerfile\n{_cut(str(dockerfile), DOCKERFILE_CHAR_LIMIT)}\n```"
        )
    for done in (deployments or [])[-RECENT_DEPLOYMENTS:]:
        url = f" at {done['url']}" if done.get("url") else ""
        notes.append(
            f"Deployment {done.get('deployment_id')} {done.get('status')}{url}: "
            f"{_cut(str(done.get('message', '')), 300)}"
        )
    pending = session.get("pending_deployment")
    if pending:
        confirm = pending.get("confirm", {})
        notes.append(
            f"A deployment of {confirm.get('app')} to {confirm.get('target')} awaits the user's "
            "confirmation: they confirm by answering yes (handled without you)."
        )
    if char_budget is None:
        return notes
    if dockerfile and _size(notes) > char_budget:
        # The file is the bulk; the model can be told it exists, and write it again if asked.
        at = next(i for i, n in enumerate(notes) if n.startswith("The Dockerfile generated"))
        notes[at] = "A Dockerfile was generated for it earlier in this session."
    while notes and _size(notes) > char_budget:
        notes.pop(0)
    return notes


def _size(notes: list[str]) -> int:
    return sum(len(n) + 1 for n in notes)
