"""Cloud Function entry point: one Pub/Sub message is one chat turn.

Returning acknowledges the message. A transient failure raises, so Pub/Sub delivers the turn
again; a permanent one has been stored as an `error` event, or, for a payload that can never be
understood, logged, and is acknowledged.
"""

from __future__ import annotations

import logging

import functions_framework
from cloudevents.http.event import CloudEvent

from agent.app import event_message, get_agent
from deploychat.errors import ProtocolError
from deploychat.turn_message import turn_from_pubsub

log = logging.getLogger("agent")


@functions_framework.cloud_event
def handle_turn(cloud_event: CloudEvent) -> None:
    agent = get_agent()
    try:
        turn = turn_from_pubsub(event_message(cloud_event.data))
    except ProtocolError as exc:
        log.error("dropping Pub/Sub message %s: %s", cloud_event["id"], exc.message)
        return
    agent.runner.run(turn)
