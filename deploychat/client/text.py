"""Session events as terminal text: streamed replies, and one readable line for everything else."""

from __future__ import annotations

import json
from typing import Any, TextIO

from deploychat.protocol import (
    AnalysisEvent,
    ChatEvent,
    DeploymentCompleteEvent,
    DeploymentUpdateEvent,
    ErrorEvent,
    SessionEvent,
)

from .config import ConnectionState
from .updates import HistoryLost, SessionLost, StateChanged

# The fields people look for first in an analysis; the rest follow in the order given.
_ANALYSIS_FIRST = ("language", "framework", "runtime", "start_command", "port")


def event_line(event: SessionEvent) -> str | None:
    """One line for an event that is not part of a message's text; None for those that are."""
    if isinstance(event, AnalysisEvent):
        return "analysis: " + _analysis(event.data)
    if isinstance(event, DeploymentUpdateEvent):
        return f"deploy {event.deployment_id} [{event.progress:3d}%] {event.stage}: {event.message}"
    if isinstance(event, DeploymentCompleteEvent):
        where = f" {event.url}" if event.url else ""
        return f"deploy {event.deployment_id} {event.status}{where}: {event.message}"
    if isinstance(event, ErrorEvent):
        again = " (retryable)" if event.retryable else ""
        return f"error {event.code}{again}: {event.message}"
    return None


def state_line(change: StateChanged, max_attempts: int) -> str:
    if change.state is ConnectionState.RECONNECTING:
        return f"reconnecting in {change.delay_s:.1f} s (attempt {change.attempt}/{max_attempts})"
    if change.state is ConnectionState.ERROR:
        return f"error: {change.reason}"
    return change.state.value


def _analysis(data: dict[str, Any]) -> str:
    """The agent's analysis in one line; a shape we do not know, field by field."""
    if not {"name", "language", "start_command"} <= data.keys():
        return ", ".join(f"{k}={_value(v)}" for k, v in _ordered(data))
    version = f" {data['language_version']}" if data.get("language_version") else ""
    parts = [f"{data['name']}: {data['language']}{version} {data.get('framework', '')}"]
    if data.get("package_manager"):
        lock = f" ({data['lock_file']})" if data.get("lock_file") else ""
        parts.append(f"{data['package_manager']}{lock}")
    parts.append(f"start `{data['start_command']}`")
    if data.get("port"):
        parts.append(f"port {data['port']}")
    names = [v.get("name") for v in data.get("env_vars") or [] if isinstance(v, dict)]
    if names:
        parts.append("env " + ", ".join(str(n) for n in names))
    if data.get("dockerfile"):
        parts.append(f"has {data['dockerfile']}")
    return ", ".join(parts)


def _ordered(data: dict[str, Any]) -> list[tuple[str, Any]]:
    first = [(k, data[k]) for k in _ANALYSIS_FIRST if k in data]
    return first + [(k, v) for k, v in data.items() if k not in _ANALYSIS_FIRST]


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return "/".join(str(v) for v in value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class TranscriptPrinter:
    """Writes a conversation as it streams: each reply grows in place on its own line(s).

    The final event's `content` is the authoritative text; when a server-side retry made the
    pieces differ from it, the whole final text is printed again rather than left wrong.
    """

    def __init__(self, out: TextIO, *, show_user: bool = True) -> None:
        self._out = out
        self._show_user = show_user
        self._shown: dict[str, str] = {}
        self._open: str | None = None  # the message whose line has no newline yet

    def event(self, event: SessionEvent, *, own: bool = False) -> None:
        if isinstance(event, ChatEvent):
            if event.role == "user":
                if self._show_user and not own:
                    self.line(f"> {event.content or event.delta}")
            elif event.final:
                self._final(event)
            else:
                self._piece(event)
            return
        text = event_line(event)
        if text is not None:
            self.line(text)

    def close(self) -> None:
        self._end_open_line()

    def line(self, text: str) -> None:
        self._end_open_line()
        self._out.write(text + "\n")
        self._out.flush()

    def _piece(self, event: ChatEvent) -> None:
        if self._open != event.message_id:
            self._end_open_line()
            self._open = event.message_id
        self._shown[event.message_id] = self._shown.get(event.message_id, "") + event.delta
        self._out.write(event.delta)
        self._out.flush()

    def _final(self, event: ChatEvent) -> None:
        content = event.content or ""
        shown = self._shown.pop(event.message_id, "")
        if self._open not in (None, event.message_id):
            self._end_open_line()
        if content.startswith(shown):
            self._out.write(content[len(shown) :])
        else:
            self._out.write("\n[the reply was revised]\n" + content)
        if event.stopped:
            self._out.write(" [stopped]")
        self._out.write("\n")
        self._out.flush()
        self._open = None

    def _end_open_line(self) -> None:
        if self._open is not None:
            self._out.write("\n")
            self._open = None


def session_news(update: SessionLost | HistoryLost) -> str:
    if isinstance(update, SessionLost):
        return (
            f"session {update.old_session_id} is not available any more (it expired, or it "
            f"belongs to another user): started a new one, {update.new_session_id}"
        )
    return (
        f"the server holds fewer events of session {update.session_id} than were shown here "
        "(its data was reset?): continuing from what it has"
    )
