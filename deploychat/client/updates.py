"""What a ChatClient tells its caller, besides the session's stored events."""

from __future__ import annotations

from dataclasses import dataclass

from deploychat.protocol import ErrorFrame, SessionEvent

from .config import ConnectionState


@dataclass(frozen=True)
class StateChanged:
    state: ConnectionState
    # Reconnecting: which attempt comes next and after how long. Error: why it stopped.
    attempt: int = 0
    delay_s: float = 0.0
    reason: str = ""


@dataclass(frozen=True)
class MessageAcked:
    """The server holds the message; it will be answered even if the connection dies now."""

    id: str


@dataclass(frozen=True)
class MessageDropped:
    """A queued message that will never be sent: the outbox overflowed, or it was refused."""

    id: str
    content: str
    reason: str


@dataclass(frozen=True)
class ServerError:
    """An `error` frame: a problem with something this client sent (not stored)."""

    frame: ErrorFrame


@dataclass(frozen=True)
class HistoryLost:
    """The server has fewer events than this client applied; it resumes from the server's."""

    session_id: str
    server_last_seq: int


@dataclass(frozen=True)
class SessionLost:
    """The kept session was refused (it expired, or belongs to another user): a new one began.

    Messages still queued go to the new session.
    """

    old_session_id: str
    new_session_id: str


Update = (
    SessionEvent
    | StateChanged
    | MessageAcked
    | MessageDropped
    | ServerError
    | HistoryLost
    | SessionLost
)
