from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from deploychat.tracing import extract
from deploychat.turn_message import TurnRequest
from edge.publisher import TurnPublisher
from edge.settings import EdgeSettings


class FakeFuture:
    def result(self, timeout: float | None = None) -> str:
        return "message-1"


class FakePublisherClient:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, topic: str, data: bytes, **kwargs: Any) -> FakeFuture:
        self.published.append({"topic": topic, "data": data, **kwargs})
        return FakeFuture()


def test_a_published_turn_carries_the_trace_to_the_function() -> None:
    client = FakePublisherClient()
    publisher = TurnPublisher(EdgeSettings(), client=client)  # type: ignore[arg-type]
    turn = TurnRequest(session_id="session-1", turn_id="t1", content="hi", accepted_at=1.0)
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("chat.accept") as span:
        publisher.publish(turn)
    sent = client.published[0]
    assert sent["ordering_key"] == "session-1" and sent["turn_id"] == "t1"
    assert "traceparent" in sent
    # What the function extracts from those attributes is the edge's span.
    attributes = {k: v for k, v in sent.items() if isinstance(v, str)}
    parent = trace.get_current_span(extract(attributes)).get_span_context()
    assert parent.trace_id == span.get_span_context().trace_id
    assert parent.span_id == span.get_span_context().span_id


def test_a_message_without_a_trace_starts_a_new_one() -> None:
    context = extract({"session_id": "s"})
    assert not trace.get_current_span(context).get_span_context().is_valid
