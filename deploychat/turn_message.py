"""The Pub/Sub message that carries one chat turn from the edge to the agent function."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from deploychat.errors import ProtocolError
from deploychat.protocol import MessageId, SessionId


class TurnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["turn"] = "turn"
    v: Literal[1] = 1
    session_id: SessionId
    turn_id: MessageId
    content: Annotated[str, StringConstraints(min_length=1)]
    accepted_at: float

    def to_pubsub(self) -> tuple[bytes, dict[str, str]]:
        """Data and attributes; the ordering key is the session id (set by the publisher)."""
        attributes = {"type": self.type, "session_id": self.session_id, "turn_id": self.turn_id}
        return self.model_dump_json().encode(), attributes


# Set by the edge, which publishes every turn with the session as its ordering key: the push body
# of real Pub/Sub names the key (`orderingKey`), but the emulator's omits it, and the agent must
# know whether the session's earlier turns were delivered first (agent/event_store.py).
ORDERING_KEY_ATTRIBUTE = "ordering"


def published_in_order(message: Any) -> bool:
    """Whether the message came with the session's ordering key: named by the push body, or by
    the edge's attribute. A copy published without the key (by hand, or by a duplicating
    publisher) has neither, unless it copied the attribute."""
    if not isinstance(message, dict):
        return False
    attributes = message.get("attributes") or {}
    session_id = attributes.get("session_id")
    key = message.get("orderingKey") or attributes.get(ORDERING_KEY_ATTRIBUTE)
    return isinstance(key, str) and bool(key) and key == session_id


def turn_from_pubsub(message: Any) -> TurnRequest:
    """Validate the `message` of a Pub/Sub push body or CloudEvent; raise ProtocolError if bad."""
    if not isinstance(message, dict):
        raise ProtocolError("invalid_message", "Pub/Sub event has no message object")
    try:
        data = base64.b64decode(message.get("data") or "", validate=True)
        obj = json.loads(data)
        turn = TurnRequest.model_validate(obj)
    except (binascii.Error, ValueError, ValidationError) as exc:
        raise ProtocolError("invalid_message", f"bad turn payload: {exc}") from None
    attributes = message.get("attributes") or {}
    for key in ("session_id", "turn_id"):
        if key in attributes and attributes[key] != getattr(turn, key):
            raise ProtocolError("invalid_message", f"attribute {key} does not match the payload")
    return turn


class CancelRequest(BaseModel):
    """A cancel of a turn, for the agent to stop what outlives the turn (a Cloud Build build).

    Published by the edge on the turns topic beside the `cancel_requested` flag it writes, with
    attribute `type` "cancel" and no ordering key (it must not wait behind a running turn).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["cancel"] = "cancel"
    v: Literal[1] = 1
    session_id: SessionId
    turn_id: MessageId

    def to_pubsub(self) -> tuple[bytes, dict[str, str]]:
        attributes = {"type": self.type, "session_id": self.session_id, "turn_id": self.turn_id}
        return self.model_dump_json().encode(), attributes


def cancel_from_pubsub(message: Any) -> CancelRequest | None:
    """The cancel in a Pub/Sub message, None if it is not one; ProtocolError if it is bad."""
    if not isinstance(message, dict) or (message.get("attributes") or {}).get("type") != "cancel":
        return None
    try:
        data = base64.b64decode(message.get("data") or "", validate=True)
        return CancelRequest.model_validate(json.loads(data))
    except (binascii.Error, ValueError, ValidationError) as exc:
        raise ProtocolError("invalid_message", f"bad cancel payload: {exc}") from None
