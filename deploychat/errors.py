"""The error tree: permanent failures are reported and acknowledged, transient ones are retried."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deploychat.protocol import ErrorCode


class DeploychatError(Exception):
    code: ErrorCode = "internal"

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class PermanentError(DeploychatError):
    """Retrying will not help: tell the user and acknowledge the work."""


class TransientError(DeploychatError):
    """May succeed later: let the caller (Pub/Sub, the client) retry."""


class ProtocolError(PermanentError):
    """A frame or payload that breaks the wire contract."""

    def __init__(self, code: ErrorCode, message: str, ref: str | None = None) -> None:
        super().__init__(message, code)
        self.ref = ref
