"""What every connection of an edge process shares: settings, stores, clients, watches."""

from __future__ import annotations

from .identity import TokenVerifier
from .limits import SocketRegistry
from .publisher import TurnPublisher
from .session_store import SessionStore
from .session_stream import SessionHub
from .settings import EdgeSettings
from .stall_watch import StallWatch


class EdgeServices:
    """What every connection of this process shares."""

    def __init__(
        self,
        settings: EdgeSettings,
        store: SessionStore | None = None,
        publisher: TurnPublisher | None = None,
        verifier: TokenVerifier | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or SessionStore(settings)
        self.publisher = publisher or TurnPublisher(settings)
        self.verifier = verifier or TokenVerifier(settings)
        self.hub = SessionHub(self.store, settings)
        self.stalls = StallWatch(settings.write_timeout_s)
        self._sockets: SocketRegistry | None = None

    @property
    def sockets(self) -> SocketRegistry:
        if self._sockets is None:
            self._sockets = SocketRegistry(
                self.store.db, self.settings.connections_per_user, self.settings.connection_lease_s
            )
        return self._sockets
