"""What each frame from the server does, on a connection that is up.

A pong feeds the heartbeat, an ack empties the outbox of its message, an error may drop a queued
message, and a stored event is handed to the caller once, in seq order. A frame that skips a seq
ends the connection (LostReason.GAP), so the next one resumes from the last applied seq.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from deploychat.protocol import (
    AckFrame,
    ConnectedFrame,
    ErrorFrame,
    PongFrame,
    SessionEvent,
    parse_server_frame,
)

from .engine import Heartbeat, LostReason, Outbox, SeqTracker, Verdict
from .updates import MessageAcked, MessageDropped, ServerError, Update

# The connection's name, as before these frames had a module of their own: the CLI's log lines
# show it.
log = logging.getLogger("deploychat.client.connection")


@dataclass
class Inbound:
    """One connection's incoming frames, applied to the client's session state."""

    seq: SeqTracker
    outbox: Outbox
    heartbeat: Heartbeat
    resend_after_s: float
    save: Callable[[], None]
    emit: Callable[[Update], None]

    def handle(self, raw: str | bytes) -> LostReason | None:
        try:
            frame = parse_server_frame(raw)
        except ValueError:
            return self._unknown(raw)
        if isinstance(frame, PongFrame):
            self.heartbeat.pong()
        elif isinstance(frame, AckFrame):
            if self.outbox.ack(frame.id):
                self.save()
                self.emit(MessageAcked(frame.id))
        elif isinstance(frame, ErrorFrame):
            self._refused(frame)
        elif isinstance(frame, ConnectedFrame):
            log.warning("ignoring a second 'connected' frame")
        else:
            return self._event(frame)
        return None

    def _event(self, event: SessionEvent) -> LostReason | None:
        verdict = self.seq.check(event.seq)
        if verdict is Verdict.DUPLICATE:
            return None
        if verdict is Verdict.GAP:
            log.warning("event %d after %s: resuming", event.seq, self.seq.last)
            return LostReason.GAP
        self.seq.applied(event.seq)
        self.save()
        self.emit(event)
        return None

    def _unknown(self, raw: str | bytes) -> LostReason | None:
        # A stored event of a kind this client does not know still holds its place in the
        # order, or the next one would look like a gap.
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        seq = obj.get("seq") if isinstance(obj, dict) else None
        if not isinstance(seq, int):
            log.debug("ignoring a frame this client does not understand: %.200r", raw)
            return None
        verdict = self.seq.check(seq)
        if verdict is Verdict.GAP:
            return LostReason.GAP
        if verdict is Verdict.APPLY:
            self.seq.applied(seq)
            self.save()
        return None

    def _refused(self, frame: ErrorFrame) -> None:
        if frame.ref is not None and frame.ref in self.outbox:
            message = next(m for m in self.outbox.pending() if m.id == frame.ref)
            verdict = self.outbox.refused(
                frame.ref, frame.code, time.monotonic(), self.resend_after_s
            )
            if verdict == "drop":
                self.save()
                self.emit(MessageDropped(message.id, message.content, frame.message))
        self.emit(ServerError(frame))
