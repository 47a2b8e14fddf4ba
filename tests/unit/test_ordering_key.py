"""Which deliveries came with the session's ordering key: only copies without it are held back
behind an earlier queued turn (agent/event_store.py)."""

from __future__ import annotations

import base64
from typing import Any

from deploychat.turn_message import ORDERING_KEY_ATTRIBUTE, TurnRequest, published_in_order

TURN = TurnRequest(session_id="session-1", turn_id="t-1", content="hi", accepted_at=1.0)


def message(key: str | None = None, attribute: str | None = None) -> dict[str, Any]:
    data, attributes = TURN.to_pubsub()
    if attribute is not None:
        attributes[ORDERING_KEY_ATTRIBUTE] = attribute
    found: dict[str, Any] = {"data": base64.b64encode(data).decode(), "attributes": attributes}
    if key is not None:
        found["orderingKey"] = key
    return found


def test_the_push_bodys_key_or_the_edges_attribute_says_it_was_ordered() -> None:
    assert published_in_order(message(key="session-1"))  # real Pub/Sub's push body
    assert published_in_order(message(attribute="session-1"))  # the edge's own attribute
    assert not published_in_order(message())  # a copy published without the key


def test_a_key_other_than_the_session_does_not_count() -> None:
    assert not published_in_order(message(key="other-session"))
    assert not published_in_order(message(attribute=""))
    assert not published_in_order(None)
