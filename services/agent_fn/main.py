"""Cloud Function entry points.

`handle_turn`: one Pub/Sub message of the turns topic is one chat turn (or the cancel of one:
that stops the Cloud Builds the turn started). `handle_build_event`: one message of Cloud Build's
`cloud-builds` topic is a build's new state, appended to its deployment's session. They are two
functions of one source (locally, two functions-framework processes).

`sweep_turns` (HTTP, called by Cloud Scheduler): drives stuck turns again (agent/sweeper.py).

Returning acknowledges the message. A transient failure raises, so Pub/Sub delivers it again; a
permanent one has been stored as an `error` event, or, for a payload that can never be
understood, logged, and is acknowledged.
"""

from __future__ import annotations

import json
import logging

import flask
import functions_framework
from cloudevents.http.event import CloudEvent
from opentelemetry.trace import SpanKind

from agent.app import event_message, get_agent
from agent.build_status import build_from_pubsub
from agent.deployment_events import cancel_turn_builds
from agent.gcp_clients import gcp_clients
from deploychat.errors import PermanentError, ProtocolError
from deploychat.tracing import extract, flush, tracer
from deploychat.turn_message import cancel_from_pubsub, published_in_order, turn_from_pubsub

log = logging.getLogger("agent")
_tracer = tracer("agent")


@functions_framework.cloud_event
def handle_turn(cloud_event: CloudEvent) -> None:
    agent = get_agent()
    message = event_message(cloud_event.data)
    try:
        cancel = cancel_from_pubsub(message)
        if cancel is not None:
            cancelled = cancel_turn_builds(
                agent.db, gcp_clients(agent.settings), cancel.session_id, cancel.turn_id
            )
            log.info("cancel of %s/%s: %d builds", cancel.session_id, cancel.turn_id, cancelled)
            return
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
            agent.runner.run(turn, ordered=published_in_order(message))
    finally:
        flush()


@functions_framework.cloud_event
def handle_build_event(cloud_event: CloudEvent) -> None:
    agent = get_agent()
    try:
        build = build_from_pubsub(event_message(cloud_event.data))
    except ProtocolError as exc:
        log.error("dropping build notification %s: %s", cloud_event["id"], exc.message)
        return
    attributes = {"deploychat.build_id": build.id, "deploychat.build_status": build.status}
    try:
        with _tracer.start_as_current_span(
            "build_event", kind=SpanKind.CONSUMER, attributes=attributes
        ):
            stored = agent.build_events.handle(build)
        log.info("build %s %s: %d events", build.id, build.status, stored)
    except PermanentError as exc:
        # Our bug, not a passing failure: redelivery would fail the same way.
        log.error("build %s %s: not stored: %s", build.id, build.status, exc.message)
    finally:
        flush()


@functions_framework.http
def sweep_turns(request: flask.Request) -> flask.Response:
    """Cloud Scheduler's call (every minute): drive again, or close, the turns nobody works on."""
    if request.method != "POST":
        return flask.Response("POST only\n", status=405)
    report = get_agent().sweeper.sweep()
    return flask.Response(json.dumps(report.as_dict()), mimetype="application/json")
