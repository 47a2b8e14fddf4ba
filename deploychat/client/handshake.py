"""Opening one connection: the WebSocket handshake, `init`, and what the server answers to it.

The answer is `connected`, or a refusal told apart here: a bad token (retrying cannot help), a
kept session that is gone or not this user's (a new session is asked for instead), or too many
sockets or new sessions (`rate_limited`: wait, then try again). A failure comes back to
ChatClient (connection.py) as the LostReason its reconnect policy goes by.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from deploychat.protocol import (
    ConnectedFrame,
    ErrorFrame,
    InitFrame,
    dump_frame,
    parse_server_frame,
)

from .config import ClientConfig
from .engine import LostReason
from .identity import AuthRejected, AuthUnreachable
from .updates import ServerError, Update

# The connection's name, as before the handshake had a module of its own: the CLI's log lines
# show it.
log = logging.getLogger("deploychat.client.connection")

CLOSE_POLICY = 1008
CLOSE_RESTART = 1012


class _Refused(Exception):
    """The server will not have this client (bad token): retrying cannot help."""


class _Busy(Exception):
    """`rate_limited` at `init` (too many sockets or new sessions): wait, then try again."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s


class _KeptSessionRefused(Exception):
    """`unauthorized` for the session asked for: it is gone, or not this user's."""


class Dialer:
    """Opens one client's connections, and keeps what a refusal means for the next attempt."""

    def __init__(self, config: ClientConfig, emit: Callable[[Update], None]) -> None:
        self.config = config
        self._emit = emit
        # Set when the kept session was refused: the next `init` asks for a new session.
        self.fresh_session = False
        self.refusal = ""
        # The server asked for at least this long before the next attempt (rate_limited).
        self.wait_at_least_s = 0.0

    async def open(
        self, session_id: str | None, last_seq: int | None
    ) -> tuple[ClientConnection, ConnectedFrame] | LostReason:
        """A connection to `session_id` that said `connected`, or why there is none."""
        try:
            return await asyncio.wait_for(
                self._open_any(session_id, last_seq), self.config.connect_timeout_s
            )
        except _Refused as exc:
            self.refusal = f"the server refused this client: {exc}"
            return LostReason.REFUSED
        except AuthRejected as exc:
            self.refusal = f"signing in failed: {exc}"
            return LostReason.REFUSED
        except _Busy as exc:
            self.wait_at_least_s = exc.retry_after_s
            return LostReason.CLOSED
        except AuthUnreachable as exc:
            log.info("no fresh ID token: %s", exc)
            return LostReason.FAILED
        except ConnectionClosed as exc:
            return closed_reason(exc)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ValueError) as exc:
            log.info("connecting to %s failed: %r", self.config.url, exc)
            return LostReason.FAILED

    async def _open_any(
        self, session_id: str | None, last_seq: int | None
    ) -> tuple[ClientConnection, ConnectedFrame]:
        """Connect to the kept session; if it was refused, to a new one.

        The server gives the same answer for a bad token and a session that is not ours, so
        the new-session attempt tells them apart: refused again means the token, and the kept
        session is not dropped for it. A refused token is refreshed once more and tried again
        (the server may see it as expired before we do). Four attempts at most.
        """
        forced = False
        while True:
            try:
                return await self._open(session_id, last_seq, force_refresh=forced)
            except _KeptSessionRefused:
                self.fresh_session = True  # the next `init` cannot raise this again
            except _Refused:
                self.fresh_session = False
                if forced or self.config.auth is None:
                    raise
                forced = True

    async def _token(self, force_refresh: bool) -> str | None:
        # In a thread: a refresh is a blocking HTTP call, and the heartbeat must not wait on it.
        source = self.config.auth
        if source is None:
            return self.config.token
        return await asyncio.to_thread(source.fresh_token, force_refresh)

    async def _open(
        self, kept_session_id: str | None, kept_last_seq: int | None, force_refresh: bool = False
    ) -> tuple[ClientConnection, ConnectedFrame]:
        cfg = self.config
        token = await self._token(force_refresh)
        session_id = None if self.fresh_session else kept_session_id
        ws = await connect(
            cfg.url,
            open_timeout=None,  # the caller's timeout covers the handshake and `connected`
            ping_interval=None,  # the protocol's own heartbeat runs instead
            close_timeout=cfg.close_timeout_s,
            max_size=None,
        )
        try:
            last_seq = 0 if session_id is None else kept_last_seq
            init = InitFrame(type="init", session_id=session_id, last_seq=last_seq, token=token)
            await ws.send(dump_frame(init))
            busy: float | None = None
            while True:
                try:
                    frame = _parse(await ws.recv())
                except ConnectionClosed as exc:
                    if busy is not None:
                        raise _Busy(busy) from None
                    if session_id is not None and closed_reason(exc) is LostReason.REFUSED:
                        raise _KeptSessionRefused() from None
                    raise
                if isinstance(frame, ConnectedFrame):
                    return ws, frame
                if isinstance(frame, ErrorFrame):
                    if frame.code == "unauthorized" and session_id is not None:
                        raise _KeptSessionRefused()
                    self._emit(ServerError(frame))
                    if frame.code == "unauthorized":
                        raise _Refused(frame.message)
                    if frame.code == "rate_limited":
                        # A close (1008) follows; it is a "later", not a "never".
                        busy = frame.retry_after_s or cfg.initial_backoff_s
        except BaseException:
            ws.transport.abort()
            raise


def _parse(raw: str | bytes) -> Any:
    try:
        return parse_server_frame(raw)
    except (ValueError, ValidationError):
        return None


def closed_reason(exc: ConnectionClosed) -> LostReason:
    code = exc.rcvd.code if exc.rcvd is not None else None
    if code == CLOSE_RESTART:
        return LostReason.RESTART
    if code == CLOSE_POLICY:
        return LostReason.REFUSED
    return LostReason.CLOSED
