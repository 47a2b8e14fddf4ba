from __future__ import annotations

import base64
import json

import pytest

from deploychat.errors import ProtocolError
from deploychat.turn_message import TurnRequest, turn_from_pubsub


def _message(obj: object, **attributes: str) -> dict[str, object]:
    return {"data": base64.b64encode(json.dumps(obj).encode()).decode(), "attributes": attributes}


def test_round_trip_through_a_pubsub_message() -> None:
    turn = TurnRequest(session_id="session-1", turn_id="t1", content="hi", accepted_at=1.0)
    data, attributes = turn.to_pubsub()
    assert attributes == {"type": "turn", "session_id": "session-1", "turn_id": "t1"}
    message = {"data": base64.b64encode(data).decode(), "attributes": attributes}
    assert turn_from_pubsub(message) == turn


@pytest.mark.parametrize(
    "message",
    [
        None,
        {"data": "%%%"},
        {"data": base64.b64encode(b"not json").decode()},
        _message({"type": "turn", "v": 1}),
        _message(
            {
                "type": "turn",
                "v": 2,
                "session_id": "session-1",
                "turn_id": "t",
                "content": "x",
                "accepted_at": 1,
            }
        ),
        _message(
            {
                "type": "turn",
                "v": 1,
                "session_id": "session-1",
                "turn_id": "t",
                "content": "x",
                "accepted_at": 1,
                "extra": True,
            }
        ),
        _message(
            {
                "type": "turn",
                "v": 1,
                "session_id": "session-1",
                "turn_id": "t",
                "content": "x",
                "accepted_at": 1,
            },
            turn_id="other",
        ),
    ],
)
def test_bad_payloads_are_protocol_errors(message: object) -> None:
    with pytest.raises(ProtocolError):
        turn_from_pubsub(message)
