"""Runs one chat turn: the user's message, typing, the streamed answer, the final message.

Safe to run again for the same turn at any point: the progress stored with each append tells a
retry what the clients have already been sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from google.cloud import firestore

from deploychat.errors import DeploychatError, PermanentError, TransientError
from deploychat.firestore_layout import turn_ref
from deploychat.tracing import tracer
from deploychat.turn_message import TurnRequest

from .deployments import DeploymentRunner, classify_reply, source_dir_for
from .event_store import LeaseLost, QueuedBehind, TurnLog, TurnProgress
from .event_writes import EventDraft
from .history import CHARS_PER_TOKEN, read_deployments, read_history, session_notes
from .model import (
    HistoryMessage,
    Model,
    ModelError,
    ModelSession,
    Retrying,
    Stopped,
    StreamItem,
    ToolCall,
    ToolResult,
    TurnContext,
)
from .session_state import PendingDeployment, read_state
from .settings import AgentSettings
from .tool_specs import tool_specs
from .toolbox import Toolbox

log = logging.getLogger(__name__)
_tracer = tracer(__name__)

NO_REPLY = "The model gave no reply to this message. Try asking again, perhaps in other words."
NO_REPLY_AFTER_TOOLS = "The model used its tools (their results are above) but wrote no reply."
TOOL_LIMIT = (
    "I stopped after {rounds} rounds of tool calls without finishing this request. Ask me to "
    "go on, or to take a narrower step."
)


@dataclass
class _Step:
    """What one model step gave the turn."""

    calls: list[ToolCall] = field(default_factory=list)
    stopped: Stopped | None = None
    cancelled: bool = False


class TurnRunner:
    def __init__(
        self,
        db: firestore.Client,
        model: Model,
        settings: AgentSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._model = model
        self._settings = settings
        self._clock = clock
        self._tools = tool_specs()  # JSON schemas built once, not per turn

    def run(self, turn: TurnRequest, *, ordered: bool = True) -> None:
        """`ordered`: it came with its ordering key, so the session's earlier turns went first."""
        turn_log = TurnLog(
            self._db,
            turn.session_id,
            turn.turn_id,
            lease_s=self._settings.turn_lease_s,
            ttl_s=self._settings.session_ttl_days * 86400,
            heartbeat_s=self._settings.turn_heartbeat_s,
            ordered=ordered,
            hold_s=self._settings.queued_hold_s,
        )
        # The user's message and typing go with the lease: one commit before the model is asked.
        try:
            progress = turn_log.begin(lambda found: self._opening(turn, found))
        except QueuedBehind as exc:
            # Acknowledged, not retried: the turn stays accepted, so its own keyed delivery, or
            # the sweeper's next publish of it, runs it once the earlier turn has started.
            # Retried instead, a copy held for long spends Pub/Sub's delivery attempts, and its
            # push slots, on nothing.
            log.info("dropping an early copy: %s", exc)
            return
        if progress is None:
            log.info("turn %s/%s already answered", turn.session_id, turn.turn_id)
            return
        try:
            self._run(turn, turn_log, progress)
        except LeaseLost:
            log.warning("turn %s/%s: a newer attempt took over", turn.session_id, turn.turn_id)
        finally:
            # No heartbeat outlives the attempt (a transient failure is retried by Pub/Sub).
            turn_log.end()

    def _opening(
        self, turn: TurnRequest, progress: TurnProgress
    ) -> tuple[list[EventDraft], dict[str, Any]]:
        """The user's message and typing, unless an earlier attempt stored them."""
        if progress.attempts > self._settings.max_delivery_attempts:
            return [], {}
        drafts: list[EventDraft] = []
        if not progress.user_stored:
            drafts.append(
                {
                    "type": "chat",
                    "turn_id": turn.turn_id,
                    "message_id": turn.turn_id,
                    "role": "user",
                    "content": turn.content,
                    "final": True,
                }
            )
        if not progress.typing_on:
            drafts.append({"type": "typing", "turn_id": turn.turn_id, "is_typing": True})
        elif progress.attempts > 1:
            # An earlier attempt died (or its stream was cut): the user sees this is a retry.
            drafts.append(_typing(turn.turn_id, "retrying"))
        return drafts, ({"user_stored": True, "typing_on": True} if drafts else {})

    def _run(self, turn: TurnRequest, turn_log: TurnLog, progress: TurnProgress) -> None:
        last_attempt = progress.attempts >= self._settings.max_delivery_attempts
        if progress.attempts > self._settings.max_delivery_attempts:
            self._fail(turn, turn_log, PermanentError("gave up on this turn", "agent_failed"))
            return
        pieces = PieceWriter(
            turn_log, turn.turn_id, progress.emitted_text, self._interval, self._clock
        )
        if progress.cancel_requested:
            self._stop(turn, turn_log, pieces.shown)
            return
        try:
            stopped = self._answer(turn, turn_log, progress, pieces)
        except TransientError as exc:
            if not last_attempt:
                log.warning("turn %s: transient failure, Pub/Sub will retry: %s", turn.turn_id, exc)
                raise
            self._fail(turn, turn_log, exc, retryable=True, pieces=pieces)
            return
        except ModelError as exc:
            self._fail(turn, turn_log, exc, retryable=exc.retryable, pieces=pieces)
            return
        except PermanentError as exc:
            self._fail(turn, turn_log, exc, pieces=pieces)
            return
        if stopped:
            self._stop(turn, turn_log, pieces.shown)
            return
        if not pieces.full.strip() and not pieces.shown.strip():
            pieces.add(NO_REPLY)  # never an empty answer
        # The text not sent yet goes with the final message, in the same commit. (A cancel is
        # heard at each piece; once the model has said everything, the answer is finished.)
        rest = pieces.rest()
        turn_log.append(
            [
                *rest,
                self._final(turn, pieces.full),
                {"type": "typing", "turn_id": turn.turn_id, "is_typing": False},
            ],
            {"emitted_text": pieces.shown},
            finish=True,
        )

    def _answer(
        self, turn: TurnRequest, turn_log: TurnLog, progress: TurnProgress, pieces: PieceWriter
    ) -> bool:
        """Write the answer into `pieces`, running tools as asked; True if cancelled."""
        session = progress.session
        pending = read_state(session, "pending_deployment", PendingDeployment)
        reply = classify_reply(turn.content) if pending else None
        if pending is not None and reply is not None:
            runner = DeploymentRunner(
                self._settings, turn_log, pending, source_dir_for(self._settings, turn.session_id)
            )
            if reply == "no":
                return pieces.add(runner.decline())
            if pieces.add(f"Deploying **{runner.app}** …\n\n") or pieces.flush():
                return True
            with _tracer.start_as_current_span(
                "deployment", attributes={"deploychat.deployment_id": pending.id}
            ):
                deployed = runner.run()
            return pieces.add(deployed.text) or deployed.cancelled
        toolbox = Toolbox(self._settings, turn_log, session, dict(progress.tools))
        budget = self._settings.history_token_budget * CHARS_PER_TOKEN
        # A deployment needs a workspace first (toolbox.py): a session without one has none,
        # and is spared the query (which the emulator runs over its whole database).
        deployments = (
            read_deployments(self._db, turn.session_id) if session.get("workspace") else []
        )
        notes = session_notes(session, deployments, char_budget=budget // 2)
        context = TurnContext(
            tools=self._tools, notes=notes, deadline=self._deadline(turn, progress)
        )
        history_budget = budget - sum(len(n) for n in notes)
        conversation = self._model.start(self._history(turn, history_budget), turn.content, context)
        used_tools = False
        for _ in range(self._settings.max_tool_rounds):
            with _tracer.start_as_current_span("model.step"):
                step = self._step(conversation.stream(), turn_log, pieces)
            if step.cancelled:
                return True
            if step.stopped is not None:
                # A refusal or a cut: the answer ends with the sentence that says so, and no
                # tool the cut answer asked for is run.
                return pieces.add(_paragraph(pieces.full, step.stopped.note))
            if not step.calls:
                if not pieces.full.strip() and used_tools:
                    return pieces.add(NO_REPLY_AFTER_TOOLS)
                return False
            # What was said so far reaches the user before a tool that may take minutes.
            if pieces.flush() or turn_log.cancel_requested():
                return True
            results = []
            for call in step.calls:
                outcome = toolbox.run(call)
                if outcome.show and pieces.add(outcome.show):
                    return True
                results.append(ToolResult(call, outcome.response))
            used_tools = True
            conversation.add_tool_results(results)
            # The model's next words start a paragraph of their own.
            if pieces.full and not pieces.full.endswith("\n\n"):
                pieces.add("\n\n" if not pieces.full.endswith("\n") else "\n")
        return self._wrap_up(turn, conversation, turn_log, pieces)

    def _step(self, items: Iterator[StreamItem], turn_log: TurnLog, pieces: PieceWriter) -> _Step:
        """Read one model step into `pieces`; a retry voids what the step had yielded."""
        step = _Step()
        start = len(pieces.full)
        retrying = False
        for item in items:
            if isinstance(item, Retrying):
                pieces.rewind(start)
                step = _Step()
                if not retrying:
                    retrying = True
                    if turn_log.append([_typing(turn_log.turn_id, "retrying")], {}):
                        return _Step(cancelled=True)
                continue
            if retrying:
                # The retry went through: the user sees plain "typing" again.
                retrying = False
                if turn_log.append([_typing(turn_log.turn_id)], {}):
                    return _Step(cancelled=True)
            if isinstance(item, Stopped):
                step.stopped = item
            elif isinstance(item, ToolCall):
                step.calls.append(item)
            elif pieces.add(item):
                return _Step(cancelled=True)
        return step

    def _wrap_up(
        self, turn: TurnRequest, conversation: ModelSession, turn_log: TurnLog, pieces: PieceWriter
    ) -> bool:
        """The tool-round limit: the model sums up with tools off, or a fixed sentence does."""
        rounds = self._settings.max_tool_rounds
        log.warning("turn %s: still calling tools after %d model steps", turn.turn_id, rounds)
        before = len(pieces.full)
        wrap_up: Callable[[], Iterator[StreamItem]] | None = getattr(conversation, "wrap_up", None)
        if wrap_up is not None:
            try:
                step = self._step(wrap_up(), turn_log, pieces)
            except ModelError as exc:
                # The limit is what the user must hear of; the fixed sentence says it.
                log.warning("turn %s: no summary at the tool limit: %s", turn.turn_id, exc.detail)
                step = _Step()
            if step.cancelled:
                return True
            if step.stopped is not None:
                return pieces.add(_paragraph(pieces.full, step.stopped.note))
        if not pieces.full[before:].strip():
            return pieces.add(_paragraph(pieces.full, TOOL_LIMIT.format(rounds=rounds)))
        return False

    def _deadline(self, turn: TurnRequest, progress: TurnProgress) -> float:
        """When the turn's model work must end (time.monotonic), counted from its first attempt."""
        now = self._clock()
        if progress.attempts <= 1:
            return now + self._settings.turn_deadline_s
        # A redelivery goes on where the first attempt's time left off.
        started = (
            turn_ref(self._db, turn.session_id, turn.turn_id)
            .get(field_paths=["started_at"])
            .to_dict()
            or {}
        ).get("started_at")
        elapsed = max(0.0, time.time() - float(started)) if started else 0.0
        return now + self._settings.turn_deadline_s - elapsed

    @property
    def _interval(self) -> float:
        return self._settings.piece_interval_ms / 1000

    def _final(self, turn: TurnRequest, text: str, stopped: bool = False) -> EventDraft:
        return {
            "type": "chat",
            "turn_id": turn.turn_id,
            "message_id": reply_id(turn.turn_id),
            "role": "assistant",
            "content": text,
            "final": True,
            "stopped": stopped,
        }

    def _stop(self, turn: TurnRequest, turn_log: TurnLog, shown: str) -> None:
        log.info("turn %s/%s cancelled", turn.session_id, turn.turn_id)
        turn_log.append(
            [
                self._final(turn, shown, stopped=True),
                {"type": "typing", "turn_id": turn.turn_id, "is_typing": False},
            ],
            {"cancelled": True},
            finish=True,
        )

    def _fail(
        self,
        turn: TurnRequest,
        turn_log: TurnLog,
        exc: DeploychatError,
        retryable: bool = False,
        pieces: PieceWriter | None = None,
    ) -> None:
        detail = getattr(exc, "detail", exc.message)  # the API's words, for the logs alone
        log.error("turn %s/%s failed: %s", turn.session_id, turn.turn_id, detail)
        # The text so far stays, as a finished message, above the error.
        kept = pieces.kept() if pieces is not None else ""
        said = [*pieces.rest(), self._final(turn, kept)] if pieces is not None and kept else []
        turn_log.append(
            [
                *said,
                {
                    "type": "error",
                    "turn_id": turn.turn_id,
                    "code": exc.code if exc.code != "internal" else "agent_failed",
                    "message": exc.message,
                    "retryable": retryable,
                },
                {"type": "typing", "turn_id": turn.turn_id, "is_typing": False},
            ],
            {"failed": exc.code},
            finish=True,
        )

    def _history(self, turn: TurnRequest, char_budget: int) -> list[HistoryMessage]:
        return read_history(
            self._db, turn.session_id, turn.turn_id, self._settings.history_events, char_budget
        )


def reply_id(turn_id: str) -> str:
    return f"{turn_id}-reply"


def _typing(turn_id: str, status: str | None = None) -> EventDraft:
    draft: EventDraft = {"type": "typing", "turn_id": turn_id, "is_typing": True}
    if status is not None:
        draft["status"] = status
    return draft


def _paragraph(text: str, sentence: str) -> str:
    """`sentence` as a paragraph of its own after `text`."""
    if not text.strip():
        return sentence
    return ("" if text.endswith("\n\n") else "\n" if text.endswith("\n") else "\n\n") + sentence


class PieceWriter:
    """Coalesces streamed text into `chat` pieces, at most one per interval after the first.

    On a retried turn the clients already hold `shown`, so only text beyond it is sent. If the new
    answer departs from what was shown, no further pieces are sent; the final message carries the
    whole new text, which clients show in place of the pieces.
    """

    def __init__(
        self,
        turn_log: TurnLog,
        turn_id: str,
        shown: str,
        interval: float,
        clock: Callable[[], float],
    ) -> None:
        self._log = turn_log
        self._turn_id = turn_id
        self.shown = shown
        self.full = ""
        self._interval = interval
        self._clock = clock
        self._last_flush: float | None = None
        self._diverged = False

    def add(self, text: str) -> bool:
        """Take more text; returns True when a cancel was requested."""
        self.full += text
        if not self._diverged and not (
            self.full.startswith(self.shown) or self.shown.startswith(self.full)
        ):
            self._diverged = True
            log.info("turn %s: retried answer differs from the one shown", self._turn_id)
        now = self._clock()
        if self._last_flush is None or now - self._last_flush >= self._interval:
            return self.flush()
        return False

    def flush(self) -> bool:
        self._last_flush = self._clock()
        piece = self._piece()
        if piece is None:
            return False
        cancelled = self._log.append([piece], {"emitted_text": self.full})
        self.shown = self.full
        return cancelled

    def rewind(self, length: int) -> None:
        """Forget the text past `length` (a retried step says it again). What clients were
        sent stays theirs: text that says the same again sends nothing new."""
        self.full = self.full[:length]

    def kept(self) -> str:
        """The text a failed turn ends with: the clients' copy, or the newer one if longer."""
        return self.full if self._diverged or len(self.full) >= len(self.shown) else self.shown

    def rest(self) -> list[EventDraft]:
        """The piece `flush` would store, for the caller to store with other events at once."""
        piece = self._piece()
        if piece is None:
            return []
        self.shown = self.full
        return [piece]

    def _piece(self) -> EventDraft | None:
        if self._diverged or len(self.full) <= len(self.shown):
            return None
        return {
            "type": "chat",
            "turn_id": self._turn_id,
            "message_id": reply_id(self._turn_id),
            "role": "assistant",
            "delta": self.full[len(self.shown) :],
            "final": False,
        }
