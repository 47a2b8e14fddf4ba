"""Settings both services share; each service adds its own in one Settings class."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEPLOYCHAT_", extra="ignore", frozen=True)

    project_id: str = Field(
        default="deploychat-local",
        validation_alias=AliasChoices("DEPLOYCHAT_PROJECT_ID", "GOOGLE_CLOUD_PROJECT"),
        description="Google Cloud project holding Firestore and Pub/Sub.",
    )
    firestore_database: str = Field(
        default="(default)", description="Firestore database id (native mode)."
    )
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="auto: Cloud Logging JSON on Cloud Run and Functions (K_SERVICE), else text.",
    )
    log_level: str = Field(default="INFO", description="Python log level.")
    running_on: str | None = Field(
        default=None,
        validation_alias=AliasChoices("K_SERVICE"),
        description="Set by Cloud Run and Cloud Functions; selects JSON logs in auto mode.",
    )
    session_ttl_days: float = Field(
        default=30.0,
        description="Sessions, events and turns get an expire_at this far ahead (TTL policy).",
    )
    trace_exporter: Literal["auto", "none", "console", "gcp"] = Field(
        default="auto",
        description="Where traces go: auto is Cloud Trace on Google Cloud (K_SERVICE), else none.",
    )
    trace_sample_ratio: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Share of new traces recorded (chat turns)."
    )
