"""What a client can be told: where to connect, and every timing of its connection engine.

The defaults are PROTOCOL.md's numbers; tests shorten them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

DEFAULT_URL = "ws://localhost:8000/ws/chat"


class TokenSource(Protocol):
    """Gives an ID token with time left on it, refreshing it when due (may block on the network).

    None: the edge runs without identity. Raises identity.AuthRejected when the sign-in is no
    longer valid (retrying cannot help) and identity.AuthUnreachable when the identity service
    or the edge cannot be reached (retrying may).
    """

    def fresh_token(self, force: bool = False) -> str | None: ...


class ConnectionState(StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"
    ERROR = "error"


@dataclass(frozen=True)
class ClientConfig:
    url: str = DEFAULT_URL
    # A session to continue; None starts a new one (unless the state file names one).
    session_id: str | None = None
    # Resume after this seq. None: everything after the state file's last seq if there is one,
    # else only what comes next. 0 replays the whole history of `session_id`.
    last_seq: int | None = None
    # An ID token sent as is in every `init` (scripts, tests)...
    token: str | None = None
    # ...or one asked for before every `init`, so each connection carries a fresh one.
    auth: TokenSource | None = None
    # Where the session id, last applied seq and unacknowledged messages are kept between runs.
    state_file: Path | None = None

    initial_backoff_s: float = 1.0
    backoff_multiplier: float = 1.5
    max_backoff_s: float = 30.0
    # Each delay is spread uniformly over ±jitter of itself, so clients that lost the same
    # server do not all come back in the same instant.
    jitter: float = 0.2
    # Consecutive failed reconnects before giving up (state `error`; `reconnect()` restarts).
    max_attempts: int = 10

    ping_interval_s: float = 30.0
    pong_timeout_s: float = 5.0
    # From opening the socket to the `connected` frame; a link that swallows the handshake
    # would otherwise hang forever.
    connect_timeout_s: float = 10.0
    close_timeout_s: float = 2.0

    outbox_limit: int = 50
    max_frame_bytes: int = 64 * 1024
    # After a message was refused for a reason that may pass (rate limit, publish failure).
    resend_after_s: float = 2.0
