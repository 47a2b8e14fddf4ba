"""Publishes chat turns to Pub/Sub, in order per session."""

from __future__ import annotations

import logging
import threading

from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from deploychat.errors import TransientError
from deploychat.tracing import inject
from deploychat.turn_message import ORDERING_KEY_ATTRIBUTE, CancelRequest, TurnRequest

from .settings import EdgeSettings

log = logging.getLogger(__name__)


class TurnPublisher:
    def __init__(self, settings: EdgeSettings, client: pubsub_v1.PublisherClient | None = None):
        self._settings = settings
        self._client = client
        self._lock = threading.Lock()
        self._topic = pubsub_v1.PublisherClient.topic_path(
            settings.project_id, settings.turns_topic
        )

    @property
    def client(self) -> pubsub_v1.PublisherClient:
        with self._lock:
            if self._client is None:
                self._client = pubsub_v1.PublisherClient(
                    # A short batch window: an ack waits for the publish.
                    batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.002),
                    publisher_options=pubsub_v1.types.PublisherOptions(
                        enable_message_ordering=True
                    ),
                )
            return self._client

    def publish(self, turn: TurnRequest) -> str:
        """Publish and wait until Pub/Sub has it; returns the message id."""
        data, attributes = turn.to_pubsub()
        attributes[ORDERING_KEY_ATTRIBUTE] = turn.session_id  # the key it is published with
        # The function continues this trace (deploychat.tracing).
        inject(attributes)
        client = self.client
        try:
            future = client.publish(self._topic, data, ordering_key=turn.session_id, **attributes)
            message_id: str = future.result(timeout=self._settings.publish_timeout_s)
            return message_id
        except Exception as exc:
            # After a failure the client pauses the ordering key until told to resume; the
            # client's resend will publish again.
            client.resume_publish(self._topic, turn.session_id)
            log.warning("publish of turn %s failed: %s", turn.turn_id, exc)
            raise TransientError("the message could not be accepted; send it again") from exc

    def publish_cancel(self, cancel: CancelRequest) -> str:
        """Publish a cancel with no ordering key: it must not wait behind a running turn."""
        data, attributes = cancel.to_pubsub()
        inject(attributes)
        try:
            future = self.client.publish(self._topic, data, **attributes)
            message_id: str = future.result(timeout=self._settings.publish_timeout_s)
            return message_id
        except Exception as exc:
            log.warning("publish of cancel %s failed: %s", cancel.turn_id, exc)
            raise TransientError("the cancel could not be sent; send it again") from exc
