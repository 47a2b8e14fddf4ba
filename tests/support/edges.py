"""More edges beside the test stack's own, sharing its emulators, with settings of their own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from devstack.processes import free_port
from devstack.stack import Stack, StackConfig
from tests.conftest import ARTIFACTS


@contextmanager
def extra_edge(stack: Stack, env: dict[str, str]) -> Iterator[Stack]:
    """A gunicorn edge on a port of its own; `env` overrides its settings ("" unsets)."""
    config = StackConfig(
        project=stack.config.project,
        topic=stack.config.topic,
        edge_port=free_port(),
        log_dir=ARTIFACTS / "logs" / f"edge-{uuid.uuid4().hex[:8]}",
        function_env=dict(stack.config.function_env),
        edge_env=env,
    )
    edge = Stack(config)
    edge.pubsub, edge.firestore, edge.auth = stack.pubsub, stack.firestore, stack.auth
    edge.start_edge()
    try:
        yield edge
    finally:
        assert edge.edge is not None
        edge.edge.stop()
