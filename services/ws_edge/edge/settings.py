"""The edge service's settings, read once at start."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import AliasChoices, Field, model_validator

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
    auth_mode: Literal["firebase", "none"] = Field(
        default="firebase",
        description="firebase: `init` needs a Firebase / Identity Platform ID token. none: no "
        "sign-in, for a local stack only (refused on Cloud Run).",
    )
    auth_emulator_host: str | None = Field(
        default=None,
        validation_alias=AliasChoices("FIREBASE_AUTH_EMULATOR_HOST"),
        description="host:port of the Firebase Auth emulator. Only then are its unsigned "
        "tokens trusted; refused on Cloud Run.",
    )
    firebase_api_key: str | None = Field(
        default=None, description="The Firebase web API key the page and CLI sign in with."
    )
    firebase_auth_domain: str | None = Field(
        default=None, description="The Firebase auth domain (e.g. PROJECT.firebaseapp.com)."
    )
    agent_model: str | None = Field(
        default=None,
        description="The model the agent runs on, shown on the page; unset: offline mode.",
    )
    init_timeout_s: float = Field(
        default=10.0, gt=0, description="`init` must arrive this soon after the upgrade (1008)."
    )
    idle_timeout_s: float = Field(
        default=75.0, gt=0, description="A socket with no frame from its client this long: 1001."
    )
    write_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A client that has not taken a frame for this long is dropped.",
    )
    inbox_frames: int = Field(
        default=8,
        ge=1,
        description="Frames a socket may have waiting to be handled; past it the edge stops "
        "reading that socket until they are, so a client that floods and never reads its "
        "answers is held back by TCP: it holds at most this many frames, plus one read of "
        "4 KB, plus a partial frame (each frame at most max_frame_bytes).",
    )
    close_timeout_s: float = Field(
        default=5.0, gt=0, description="After our close frame, TCP is dropped this soon."
    )
    send_buffer_bytes: int = Field(
        default=64 * 1024,
        ge=0,
        description="Each socket's kernel send buffer (SO_SNDBUF; Linux doubles it): what a "
        "client that does not read can hold in the kernel. 0: the kernel's own, up to tcp_wmem.",
    )
    drain_timeout_s: float = Field(
        default=1.0,
        gt=0,
        description="On SIGTERM, how long a socket's 1012 close frame may take to go out, "
        "from when its write starts; a client that does not take it by then is dropped.",
    )
    request_timeout_s: float = Field(
        default=3600.0, gt=0, description="Cloud Run's request timeout (the service's setting)."
    )
    max_socket_age_s: float | None = Field(
        default=None,
        gt=0,
        description="Sockets are closed with 1012 (reconnect at once) at this age; default: "
        "the request timeout minus 5 minutes, so the platform never cuts one.",
    )
    socket_age_jitter: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="Each socket's age limit is shortened by up to this share, at random.",
    )
    turns_per_minute: int = Field(
        default=20, ge=1, description="Chat turns one user may send per minute, all sockets."
    )
    cancels_per_minute: int = Field(
        default=30, ge=1, description="Cancels one user may send per minute, all sockets."
    )
    sessions_per_hour: int = Field(
        default=30, ge=1, description="New sessions one user may open per hour."
    )
    connections_per_user: int = Field(
        default=10, ge=1, description="Sockets one user may hold open at once, all instances."
    )
    connection_lease_s: float = Field(
        default=300.0,
        ge=10,
        description="An open socket's record lasts this long unless renewed (at half of it).",
    )
    echo_route: bool = Field(
        default=False,
        description="Serve /ws/echo (an echo on the chat's transport) for conformance tests.",
    )
    publish_timeout_s: float = Field(
        default=10.0, description="How long a chat waits for Pub/Sub before it is refused."
    )
    replay_page_size: int = Field(
        default=500, ge=1, description="Events read by id per Firestore request when catching up."
    )
    feed_buffer: int = Field(
        default=256, ge=1, description="Recent events kept in memory per watched session."
    )
    feed_linger_s: float = Field(
        default=10.0, description="Keep a session's listener this long after its last socket."
    )
    listen_idle_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A Firestore listen stream silent this long with targets is probed.",
    )
    listen_probe_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="A probed (or new) listen stream that answers nothing this long is reopened.",
    )

    @model_validator(mode="after")
    def _secure_on_cloud_run(self) -> Self:
        if self.running_on and self.auth_mode == "none":
            raise ValueError("auth_mode none is for a local stack only, not on Cloud Run")
        if self.running_on and self.auth_emulator_host:
            raise ValueError("the Auth emulator's unsigned tokens are never trusted on Cloud Run")
        return self

    @property
    def socket_age_limit_s(self) -> float:
        if self.max_socket_age_s is not None:
            return self.max_socket_age_s
        return max(60.0, self.request_timeout_s - 300.0)
