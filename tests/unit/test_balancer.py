"""The local balancer's choices: instances in turn, and swallowing a turn's redeliveries."""

from __future__ import annotations

import base64
import json

from devstack.balancer import Balancer


def push(message_id: str, turn_id: str) -> bytes:
    data = base64.b64encode(json.dumps({"turn_id": turn_id}).encode()).decode()
    return json.dumps({"message": {"messageId": message_id, "data": data}}).encode()


def test_requests_go_to_each_instance_in_turn_the_others_as_fallbacks() -> None:
    balancer = Balancer(["a", "b", "c"])
    firsts = [balancer.pick()[0] for _ in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]
    assert sorted(balancer.pick()) == ["a", "b", "c"]


def test_a_dropped_turn_is_delivered_once_and_its_redeliveries_swallowed() -> None:
    balancer = Balancer(["a"])
    assert not balancer.should_drop(push("m1", "t1"))
    balancer.drop("t1")
    assert balancer.should_drop(push("m1", "t1")), "a redelivery of a message seen before"
    assert not balancer.should_drop(push("m2", "t1")), "a new publish of the turn goes through"
    assert not balancer.should_drop(push("m3", "t2"))
    assert not balancer.should_drop(b"not json")
    assert balancer.stats()["dropped"] == 1
