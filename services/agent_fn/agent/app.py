"""The function's dependencies, made lazily once per instance and replaceable in tests."""

from __future__ import annotations

import threading
from typing import Any

from google.cloud import firestore

from deploychat.logging_setup import setup_logging
from deploychat.tracing import setup_tracing

from .deployment_events import BuildEvents
from .gcp_clients import gcp_clients
from .model import Model, build_model
from .settings import AgentSettings
from .sweeper import TurnSweeper
from .turn_runner import TurnRunner


class Agent:
    def __init__(
        self,
        settings: AgentSettings | None = None,
        db: firestore.Client | None = None,
        model: Model | None = None,
    ) -> None:
        self.settings = settings or AgentSettings()
        setup_logging(self.settings)
        setup_tracing(self.settings, "agent_fn")
        self._db = db
        self._model = model
        self._runner: TurnRunner | None = None
        self._build_events: BuildEvents | None = None
        self._sweeper: TurnSweeper | None = None
        self._lock = threading.Lock()

    @property
    def runner(self) -> TurnRunner:
        # Built on first use, not at import: a cold start that only fails a bad payload
        # never opens a gRPC channel.
        with self._lock:
            if self._runner is None:
                db = self._db or firestore.Client(
                    project=self.settings.project_id, database=self.settings.firestore_database
                )
                model = self._model or build_model(self.settings)
                self._runner = TurnRunner(db, model, self.settings)
            return self._runner

    @property
    def db(self) -> firestore.Client:
        with self._lock:
            if self._db is None:
                self._db = firestore.Client(
                    project=self.settings.project_id, database=self.settings.firestore_database
                )
            return self._db

    @property
    def build_events(self) -> BuildEvents:
        """The handler of Cloud Build notifications (the function's second entry point)."""
        db = self.db
        with self._lock:
            if self._build_events is None:
                self._build_events = BuildEvents(db, self.settings, gcp_clients(self.settings))
            return self._build_events

    @property
    def sweeper(self) -> TurnSweeper:
        """The stuck-turn sweeper (the `sweep_turns` entry point)."""
        db = self.db
        with self._lock:
            if self._sweeper is None:
                self._sweeper = TurnSweeper(db, self.settings)
            return self._sweeper


_agent: Agent | None = None
_agent_lock = threading.Lock()


def get_agent() -> Agent:
    global _agent
    with _agent_lock:
        if _agent is None:
            _agent = Agent()
        return _agent


def set_agent(agent: Agent | None) -> None:
    """Inject an Agent (tests), or None to build the default one again on next use."""
    global _agent
    with _agent_lock:
        _agent = agent


def event_message(data: Any) -> Any:
    """The Pub/Sub message inside a CloudEvent's data (Eventarc or a converted push body)."""
    return data.get("message") if isinstance(data, dict) else None
