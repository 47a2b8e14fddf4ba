"""The command line's settings (DEPLOYCHAT_*), read once and passed down."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .config import DEFAULT_URL
from .google_oauth import AUTH_URI, TOKEN_URI


class ClientSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEPLOYCHAT_", extra="ignore", frozen=True)

    url: str = Field(
        default=DEFAULT_URL,
        description="The edge: its chat WebSocket (ws://host/ws/chat) or its page (https://host).",
    )
    token: str | None = Field(
        default=None, description="An ID token sent as is, instead of a kept sign-in."
    )
    google_client_id: str | None = Field(
        default=None, description="OAuth client id (type: desktop app) for `login --google`."
    )
    google_client_secret: str | None = Field(
        default=None, description="That client's secret (not confidential for desktop apps)."
    )
    google_auth_uri: str = Field(default=AUTH_URI, description="Google's authorization endpoint.")
    google_token_uri: str = Field(default=TOKEN_URI, description="Google's token endpoint.")

    @field_validator("token", "google_client_id", "google_client_secret")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None
