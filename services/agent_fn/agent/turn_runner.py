"""Runs one chat turn: the user's message, typing, the streamed answer, the final message.

Safe to run again for the same turn at any point: the progress stored with each append tells a
retry what the clients have already been sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from google.cloud import firestore

from deploychat.errors import DeploychatError, PermanentError, TransientError
from deploychat.tracing import tracer
from deploychat.turn_message import TurnRequest

from .deployments import DeploymentRunner, classify_reply, source_dir_for
from .event_store import EventDraft, LeaseLost, TurnLog, TurnProgress
from .history import read_history, session_notes
from .model import HistoryMessage, Model, ToolCall, ToolResult, TurnContext
from .session_state import PendingDeployment, read_state
from .settings import AgentSettings
from .tool_specs import tool_specs
from .toolbox import Toolbox

log = logging.getLogger(__name__)
_tracer = tracer(__name__)


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

    def run(self, turn: TurnRequest) -> None:
        turn_log = TurnLog(
            self._db,
            turn.session_id,
            turn.turn_id,
            lease_s=self._settings.turn_lease_s,
            ttl_s=self._settings.session_ttl_days * 86400,
        )
        # The user's message and typing go with the lease: one commit before the model is asked.
        progress = turn_log.begin(lambda found: self._opening(turn, found))
        if progress is None:
            log.info("turn %s/%s already answered", turn.session_id, turn.turn_id)
            return
        try:
            self._run(turn, turn_log, progress)
        except LeaseLost:
            log.warning("turn %s/%s: a newer attempt took over", turn.session_id, turn.turn_id)

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
            self._fail(turn, turn_log, exc, retryable=True)
            return
        except PermanentError as exc:
            self._fail(turn, turn_log, exc)
            return
        if stopped:
            self._stop(turn, turn_log, pieces.shown)
            return
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
        context = TurnContext(tools=self._tools, notes=session_notes(session))
        conversation = self._model.start(self._history(turn), turn.content, context)
        for _ in range(self._settings.max_tool_rounds):
            calls: list[ToolCall] = []
            with _tracer.start_as_current_span("model.step"):
                for item in conversation.stream():
                    if isinstance(item, ToolCall):
                        calls.append(item)
                        continue
                    if pieces.add(item):
                        return True
            if not calls:
                return False
            # What was said so far reaches the user before a tool that may take minutes.
            if pieces.flush() or turn_log.cancel_requested():
                return True
            results = []
            for call in calls:
                outcome = toolbox.run(call)
                if outcome.show and pieces.add(outcome.show):
                    return True
                results.append(ToolResult(call, outcome.response))
            conversation.add_tool_results(results)
            # The model's next words start a paragraph of their own.
            if pieces.full and not pieces.full.endswith("\n\n"):
                pieces.add("\n\n" if not pieces.full.endswith("\n") else "\n")
        log.warning(
            "turn %s: no answer after %d model steps", turn.turn_id, self._settings.max_tool_rounds
        )
        return False

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
        self, turn: TurnRequest, turn_log: TurnLog, exc: DeploychatError, retryable: bool = False
    ) -> None:
        log.error("turn %s/%s failed: %s", turn.session_id, turn.turn_id, exc.message)
        turn_log.append(
            [
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

    def _history(self, turn: TurnRequest) -> list[HistoryMessage]:
        return read_history(self._db, turn.session_id, turn.turn_id, self._settings.history_events)


def reply_id(turn_id: str) -> str:
    return f"{turn_id}-reply"


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
