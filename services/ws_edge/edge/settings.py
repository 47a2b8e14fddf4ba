"""The edge service's settings, read once at start."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from deploychat.settings import CommonSettings


class EdgeSettings(CommonSettings):
    port: int = Field(
        default=8000,
        validation_alias=AliasChoices("PORT", "DEPLOYCHAT_PORT"),
        description="HTTP port (Cloud Run sets PORT).",
    )
    turns_topic: str = Field(
        default="deploychat-turns", description="Pub/Sub topic (id) the chat turns go to."
    )
    max_frame_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest accepted frame; larger closes with 1009."
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins accepted besides the edge's own (JSON list). "
        "Requests without an Origin header (non-browser clients) are accepted.",
    )
    auth_token: SecretStr | None = Field(
        default=None,
        description="If set, `init` must carry this token, or the socket closes with 1008.",
    )
    publish_timeout_s: float = Field(
        default=10.0, description="How long a chat waits for Pub/Sub before it is refused."
    )
    chat_rate_per_minute: int = Field(
        default=60, ge=1, description="Chat frames one connection may send per minute."
    )
    replay_page_size: int = Field(
        default=500, ge=1, description="Events read per Firestore query when catching up."
    )
    listen_window: int = Field(
        default=10, ge=1, description="Newest events each session listener watches."
    )
    feed_buffer: int = Field(
        default=256, ge=1, description="Recent events kept in memory per watched session."
    )
    feed_linger_s: float = Field(
        default=10.0, description="Keep a session's listener this long after its last socket."
    )
