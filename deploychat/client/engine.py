"""The connection engine's decisions, free of I/O and of the wall clock.

Everything here takes `now` (seconds on any monotonic clock) or a random source as an argument,
so the behaviour PROTOCOL.md asks of clients (backoff with jitter, the attempt limit, the
heartbeat deadline, the bounded outbox that only an ack empties, exactly-once in-order events)
is tested with a fake clock. The browser's static/engine.js makes the same decisions.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from deploychat.protocol import ErrorCode

from .config import ClientConfig

Random = Callable[[], float]  # uniform in [0, 1), like random.random


# ---------------------------------------------------------------- reconnecting


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 1.0
    multiplier: float = 1.5
    max_s: float = 30.0
    jitter: float = 0.2

    @classmethod
    def from_config(cls, config: ClientConfig) -> Backoff:
        return cls(
            config.initial_backoff_s,
            config.backoff_multiplier,
            config.max_backoff_s,
            config.jitter,
        )

    def base(self, attempt: int) -> float:
        """The delay before reconnect number `attempt` (1-based), before jitter."""
        return float(min(self.max_s, self.initial_s * self.multiplier ** (attempt - 1)))

    def delay(self, attempt: int, rand: Random) -> float:
        base = self.base(attempt)
        spread = base * self.jitter
        return min(self.max_s, max(0.0, base - spread + 2 * spread * rand()))


class LostReason(enum.Enum):
    FAILED = "failed"  # could not open, or no `connected` in time
    CLOSED = "closed"  # the server or the network closed it
    RESTART = "restart"  # close code 1012: the instance is draining
    DEAD = "dead"  # the heartbeat found no pong
    GAP = "gap"  # an event skipped a seq: resume from the last applied one
    REFUSED = "refused"  # close code 1008: retrying cannot help


class Reconnector:
    """Counts consecutive failed attempts and says how long to wait before the next one."""

    def __init__(self, backoff: Backoff, max_attempts: int, rand: Random) -> None:
        self._backoff = backoff
        self._max_attempts = max_attempts
        self._rand = rand
        self.attempts = 0

    def connected(self) -> None:
        self.attempts = 0

    def reset(self) -> None:
        """A person asked to try again: a fresh series of attempts."""
        self.attempts = 0

    def next_delay(self, reason: LostReason) -> float | None:
        """Seconds to wait before the next attempt, or None: give up."""
        if reason is LostReason.REFUSED or self.attempts >= self._max_attempts:
            return None
        self.attempts += 1
        if reason is LostReason.RESTART and self.attempts == 1:
            return 0.0
        return self._backoff.delay(self.attempts, self._rand)


# ---------------------------------------------------------------- heartbeat


class Beat(enum.Enum):
    NONE = "none"
    PING = "ping"
    DEAD = "dead"


class Heartbeat:
    """One ping per interval; a ping with no pong by its deadline means the link is dead."""

    def __init__(self, interval_s: float, timeout_s: float) -> None:
        self._interval = interval_s
        self._timeout = timeout_s
        self._next_ping = 0.0
        self._deadline: float | None = None

    def start(self, now: float) -> None:
        self._next_ping = now + self._interval
        self._deadline = None

    def poll(self, now: float) -> Beat:
        if self._deadline is not None:
            return Beat.DEAD if now >= self._deadline else Beat.NONE
        if now >= self._next_ping:
            self._deadline = now + self._timeout
            self._next_ping = now + self._interval
            return Beat.PING
        return Beat.NONE

    def pong(self) -> None:
        self._deadline = None

    def next_wakeup(self) -> float:
        return self._deadline if self._deadline is not None else self._next_ping

    @property
    def awaiting_pong(self) -> bool:
        return self._deadline is not None


# ---------------------------------------------------------------- outbox


@dataclass(frozen=True)
class OutgoingMessage:
    id: str
    content: str


# Refusals that a resend cannot fix: the message leaves the outbox and the user is told.
_HOPELESS: frozenset[ErrorCode] = frozenset({"invalid_message", "too_large", "unauthorized"})

ErrorVerdict = Literal["drop", "resend", "ignore"]


class Outbox:
    """Chat messages not yet acknowledged, oldest first; at most `limit` of them."""

    def __init__(self, limit: int, messages: Iterable[OutgoingMessage] = ()) -> None:
        self._limit = limit
        self._items: OrderedDict[str, OutgoingMessage] = OrderedDict()
        # Ids written to the current connection. A resend on the same connection would be
        # harmless (the id is the idempotency key) but is wasted work.
        self._sent: set[str] = set()
        self._resend_at: dict[str, float] = {}
        for message in messages:
            self.add(message)

    def add(self, message: OutgoingMessage) -> list[OutgoingMessage]:
        """Queue a message; returns the oldest ones dropped to stay within the limit."""
        self._items[message.id] = message
        self._items.move_to_end(message.id)
        dropped: list[OutgoingMessage] = []
        while len(self._items) > self._limit:
            _, oldest = self._items.popitem(last=False)
            self._forget(oldest.id)
            dropped.append(oldest)
        return dropped

    def ack(self, message_id: str) -> bool:
        """The server holds it now. False if it was not (or no longer) here."""
        if self._items.pop(message_id, None) is None:
            return False
        self._forget(message_id)
        return True

    def refused(
        self, message_id: str, code: ErrorCode, now: float, resend_after_s: float
    ) -> ErrorVerdict:
        if message_id not in self._items:
            return "ignore"
        if code in _HOPELESS:
            del self._items[message_id]
            self._forget(message_id)
            return "drop"
        self._sent.discard(message_id)
        self._resend_at[message_id] = now + resend_after_s
        return "resend"

    def new_connection(self) -> None:
        """Nothing is on the new connection yet: every message is sent again, in order."""
        self._sent.clear()
        self._resend_at.clear()

    def to_send(self, now: float) -> list[OutgoingMessage]:
        """Messages due on this connection, in order; they are marked sent.

        One that must wait (refused a moment ago) holds back the ones after it, so the
        server receives them in the order they were written.
        """
        out: list[OutgoingMessage] = []
        for message in self._items.values():
            if message.id in self._sent:
                continue
            if self._resend_at.get(message.id, now) > now:
                break
            self._resend_at.pop(message.id, None)
            self._sent.add(message.id)
            out.append(message)
        return out

    def next_resend(self) -> float | None:
        return min(self._resend_at.values(), default=None)

    def pending(self) -> list[OutgoingMessage]:
        return list(self._items.values())

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._items

    def __len__(self) -> int:
        return len(self._items)

    def _forget(self, message_id: str) -> None:
        self._sent.discard(message_id)
        self._resend_at.pop(message_id, None)


# ---------------------------------------------------------------- events in order


class Verdict(enum.Enum):
    APPLY = "apply"
    DUPLICATE = "duplicate"
    GAP = "gap"


class SeqTracker:
    """The highest seq applied. None: nothing known yet, take what the server says is next."""

    def __init__(self, last: int | None = None) -> None:
        self.last = last

    def check(self, seq: int) -> Verdict:
        if self.last is None:
            # Only happens before `connected` told us where the session stands.
            return Verdict.GAP
        if seq <= self.last:
            return Verdict.DUPLICATE
        if seq != self.last + 1:
            return Verdict.GAP
        return Verdict.APPLY

    def applied(self, seq: int) -> None:
        self.last = seq

    def connected(self, server_last: int) -> bool:
        """Take the session's position from `connected`; True if we must resume again.

        A server that has fewer events than we applied lost them (or the id now names a new
        session). It would skip every event up to our last seq, so the caller reconnects with
        the server's position instead.
        """
        if self.last is None:
            self.last = server_last
            return False
        if server_last < self.last:
            self.last = server_last
            return True
        return False
