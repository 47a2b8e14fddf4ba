"""The Python chat client: the same connection engine as the browser page, for programs.

from deploychat.client import ChatClient, ClientConfig

async with ChatClient(ClientConfig(url="wss://.../ws/chat")) as client:
    turn_id = await client.send("hello")
    async for event in client.events():
        ...
"""

from .config import DEFAULT_URL, ClientConfig, ConnectionState, TokenSource
from .connection import STORED_EVENTS, ChatClient, MessageTooLarge
from .engine import OutgoingMessage
from .updates import (
    HistoryLost,
    MessageAcked,
    MessageDropped,
    ServerError,
    SessionLost,
    StateChanged,
    Update,
)

__all__ = [
    "DEFAULT_URL",
    "STORED_EVENTS",
    "ChatClient",
    "ClientConfig",
    "ConnectionState",
    "HistoryLost",
    "MessageAcked",
    "MessageDropped",
    "MessageTooLarge",
    "OutgoingMessage",
    "ServerError",
    "SessionLost",
    "StateChanged",
    "TokenSource",
    "Update",
]
