"""Cloud Function entry point: one Pub/Sub message is one chat turn.

Returning acknowledges the message. A transient failure raises, so Pub/Sub delivers the turn
again; a permanent one has been stored as an `error` event, or, for a payload that can never be
understood, logged, and is acknowledged.
"""

from __future__ import annotations

import logging

import functions_framework
from cloudevents.http.event import CloudEvent
from opentelemetry.trace import SpanKind

from agent.app import event_message, get_agent
from deploychat.errors import ProtocolError
from deploychat.tracing import extract, flush, tracer
from deploychat.turn_message import turn_from_pubsub

log = logging.getLogger("agent")
_tracer = tracer("agent")


@functions_framework.cloud_event
def handle_turn(cloud_event: CloudEvent) -> None:
    agent = get_agent()
    message = event_message(cloud_event.data)
    try:
        turn = turn_from_pubsub(message)
    except ProtocolError as exc:
        log.error("dropping Pub/Sub message %s: %s", cloud_event["id"], exc.message)
        return
    # The trace the edge started when it accepted the chat goes on here.
    parent = extract(message.get("attributes") or {})
    attributes = {"deploychat.session_id": turn.session_id, "deploychat.turn_id": turn.turn_id}
    try:
        with _tracer.start_as_current_span(
            "turn", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        ):
            agent.runner.run(turn)
    finally:
        flush()
