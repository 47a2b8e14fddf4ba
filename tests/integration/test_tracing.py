"""One chat is one trace, from the edge that accepted it to the function that answered it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest

from devstack.stack import Stack
from tests.support.ws import RawClient

TRACING = {"DEPLOYCHAT_TRACE_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "200"}


@pytest.fixture
def traced(stack: Stack) -> Iterator[Stack]:
    saved = dict(stack.config.function_env), dict(stack.config.edge_env)
    stack.config.function_env = {**saved[0], **TRACING}
    stack.config.edge_env = {**saved[1], **TRACING}
    stack.restart_function()
    stack.restart_edge()
    yield stack
    stack.config.function_env, stack.config.edge_env = saved
    stack.restart_function()
    stack.restart_edge()


def spans(log: str, turn_id: str) -> list[dict[str, object]]:
    """The console exporter's spans (multi-line JSON objects) that name this turn."""
    found = []
    for block in re.findall(r"^\{\n.*?^\}$", log, re.S | re.M):
        if turn_id in block:
            found.append(json.loads(block))
    return found


def test_one_chat_is_one_trace_across_edge_and_function(traced: Stack, uid: str) -> None:
    turn_id = f"tr-{uid}"
    with RawClient(traced.ws_url) as client:
        client.init()
        client.send({"type": "chat", "id": turn_id, "content": "trace me"})
        client.turn(turn_id)
    assert traced.edge is not None and traced.function is not None
    deadline = time.monotonic() + 15
    while True:
        edge = spans(traced.edge.tail(2000), turn_id)
        function = spans(traced.function.tail(4000), turn_id)
        if edge and function:
            break
        assert time.monotonic() < deadline, "spans were not exported"
        time.sleep(0.3)
    accept = next(s for s in edge if s["name"] == "chat.accept")
    turn = next(s for s in function if s["name"] == "turn")
    trace_id = accept["context"]["trace_id"]  # type: ignore[index]
    assert turn["context"]["trace_id"] == trace_id  # type: ignore[index]
    assert turn["parent_id"] == accept["context"]["span_id"]  # type: ignore[index]
