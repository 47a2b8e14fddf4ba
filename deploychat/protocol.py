"""The chat wire protocol, version 1 (see PROTOCOL.md): the one source of truth for every frame.

Frames the server receives are strict (`extra="forbid"`): a client that sends something we do not
understand is told so. Frames the server sends are lenient for the reader (`extra="ignore"`), so a
newer server that adds fields never breaks an older client, and the edge can read events a newer
agent wrote.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from deploychat.errors import ProtocolError

PROTOCOL_VERSION = 1

# Firestore reserves document ids of the form __x__: such a session id could never be stored.
SessionId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,128}$")]


def is_reserved_id(value: str) -> bool:
    """Firestore reserves document ids of the form __x__: no session can have one."""
    return value.startswith("__") and value.endswith("__")


MessageId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

ErrorCode = Literal[
    "invalid_message",
    "not_initialized",
    "too_large",
    "rate_limited",
    "unauthorized",
    "forbidden",
    "agent_failed",
    "model_unavailable",
    "internal",
]


class _Received(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Sent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# ---------------------------------------------------------------- client to server


class InitFrame(_Received):
    type: Literal["init"]
    session_id: SessionId | None = None
    last_seq: Annotated[int, Field(ge=0)] | None = None
    token: str | None = None


class ChatFrame(_Received):
    type: Literal["chat"]
    id: MessageId
    content: Annotated[str, StringConstraints(min_length=1)]


class PingFrame(_Received):
    type: Literal["ping"]
    ts: Annotated[float, Field(allow_inf_nan=False)]


class CancelFrame(_Received):
    type: Literal["cancel"]
    turn_id: MessageId


ClientFrame = Annotated[
    InitFrame | ChatFrame | PingFrame | CancelFrame, Field(discriminator="type")
]
CLIENT_FRAME: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)

# ---------------------------------------------------------------- server to client, not stored


class ConnectedFrame(_Sent):
    type: Literal["connected"] = "connected"
    session_id: str
    last_seq: int
    protocol: int = PROTOCOL_VERSION
    resumed: bool


class AckFrame(_Sent):
    type: Literal["ack"] = "ack"
    id: str


class PongFrame(_Sent):
    type: Literal["pong"] = "pong"
    ts: float


class ErrorFrame(_Sent):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    ref: str | None = None
    retry_after_s: float | None = None


# ---------------------------------------------------------------- stored session events


class _Stored(_Sent):
    seq: Annotated[int, Field(ge=1)]
    turn_id: str
    # When the event was stored (epoch seconds). An addition to PROTOCOL.md's fields.
    ts: float | None = None


class ChatEvent(_Stored):
    type: Literal["chat"] = "chat"
    message_id: str
    role: Literal["user", "assistant"]
    delta: str = ""
    content: str | None = None
    final: bool = False
    stopped: bool = False


class TypingEvent(_Stored):
    type: Literal["typing"] = "typing"
    is_typing: bool
    # An addition to PROTOCOL.md: with is_typing true, what the agent is doing, when it is worth
    # saying ("retrying": a model call failed or stalled and is being tried again). The latest
    # typing event of a turn holds; one without `status` means plain work again.
    status: str | None = None


class AnalysisEvent(_Stored):
    type: Literal["analysis"] = "analysis"
    data: dict[str, Any]


class DeploymentUpdateEvent(_Stored):
    type: Literal["deployment_update"] = "deployment_update"
    deployment_id: str
    stage: str
    progress: Annotated[int, Field(ge=0, le=100)]
    message: str
    # An addition to PROTOCOL.md: with stage "awaiting_confirmation", what the user is asked to
    # confirm (target, project, region, service, source); they answer with a chat "yes" or "no".
    confirm: dict[str, Any] | None = None


class DeploymentCompleteEvent(_Stored):
    type: Literal["deployment_complete"] = "deployment_complete"
    deployment_id: str
    status: Literal["succeeded", "failed"]
    url: str | None = None
    message: str
    # An addition to PROTOCOL.md: how it ended, so a declined or cancelled deployment (status
    # "failed") is not shown as a failure. Absent from older events.
    outcome: Literal["succeeded", "failed", "cancelled", "declined"] | None = None


class ErrorEvent(_Stored):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    retryable: bool = False


SessionEvent = Annotated[
    ChatEvent
    | TypingEvent
    | AnalysisEvent
    | DeploymentUpdateEvent
    | DeploymentCompleteEvent
    | ErrorEvent,
    Field(discriminator="type"),
]
SESSION_EVENT: TypeAdapter[SessionEvent] = TypeAdapter(SessionEvent)

# What a client may receive: a stored event (it has `seq`) or one of the unstored frames. The
# `error` type is shared, so clients tell the two apart by the presence of `seq`.
UnstoredFrame = Annotated[
    ConnectedFrame | AckFrame | PongFrame | ErrorFrame, Field(discriminator="type")
]
UNSTORED_FRAME: TypeAdapter[UnstoredFrame] = TypeAdapter(UnstoredFrame)
ServerFrame = SessionEvent | UnstoredFrame


def parse_client_frame(raw: str | bytes) -> ClientFrame:
    """Parse one WebSocket frame from a client, or raise a ProtocolError saying what is wrong."""
    if isinstance(raw, bytes):
        raise ProtocolError("invalid_message", "frames must be UTF-8 JSON text, not binary")
    if raw.count("{") + raw.count("[") > MAX_NESTING and _nesting(raw) > MAX_NESTING:
        raise ProtocolError("invalid_message", f"frame is nested deeper than {MAX_NESTING}")
    try:
        obj = json.loads(raw, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise ProtocolError("invalid_message", f"frame is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("invalid_message", "frame must be a JSON object")
    if not _all_text_encodable(obj):
        # A lone surrogate (\ud800) is valid JSON but not Unicode text: nothing could store it.
        raise ProtocolError("invalid_message", "frame has a string that is not valid Unicode")
    ref = _valid_ref(obj.get("id"))
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("invalid_message", "frame has no string field 'type'", ref)
    try:
        return CLIENT_FRAME.validate_python(obj)
    except ValidationError as exc:
        raise ProtocolError("invalid_message", _describe(exc, kind), ref) from None


# Our frames are flat; JSON nested deeper than this is refused before it is parsed, so no
# recursion limit is ever reached (a 2 KB frame can nest 1,000 deep).
MAX_NESTING = 16


def _nesting(text: str) -> int:
    """How deep brackets nest, outside strings: a cheap scan before json.loads."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_NESTING:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _all_text_encodable(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_all_text_encodable(k) and _all_text_encodable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_all_text_encodable(v) for v in value)
    return True


def _valid_ref(value: Any) -> str | None:
    """The frame's `id`, echoed in an error so the client knows which frame it was."""
    return value if isinstance(value, str) and len(value) <= 256 else None


def parse_server_frame(raw: str | bytes) -> ServerFrame:
    """Parse a frame a server sent (the client side): unknown fields are ignored."""
    obj = json.loads(raw)
    if not isinstance(obj, dict):
        raise ValueError("frame must be a JSON object")
    if "seq" in obj:
        return SESSION_EVENT.validate_python(obj)
    return UNSTORED_FRAME.validate_python(obj)


def dump_frame(frame: BaseModel) -> str:
    return frame.model_dump_json(exclude_none=True)


def _describe(exc: ValidationError, kind: str) -> str:
    first = exc.errors()[0]
    if first["type"] == "union_tag_invalid":
        return f"unknown frame type {kind!r}"
    # Locations start with the union tag; the field is what a client needs.
    loc = ".".join(str(p) for p in first["loc"][1:]) or "frame"
    return f"{kind}: {loc}: {first['msg']}"
