"""The agent function's settings, read once per instance."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator

from deploychat.settings import CommonSettings


class AgentSettings(CommonSettings):
    gemini_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "DEPLOYCHAT_GEMINI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"
        ),
        description="Gemini API key. Without it (and without Vertex AI) the agent runs offline.",
    )
    use_vertex: bool = Field(
        default=False,
        validation_alias=AliasChoices("DEPLOYCHAT_USE_VERTEX", "GOOGLE_GENAI_USE_VERTEXAI"),
        description="Call Gemini through Vertex AI with the function's service account.",
    )
    vertex_location: str = Field(
        default="us-central1",
        validation_alias=AliasChoices("DEPLOYCHAT_VERTEX_LOCATION", "GOOGLE_CLOUD_LOCATION"),
        description="Vertex AI region.",
    )
    gemini_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DEPLOYCHAT_GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL"),
        description="Override of the Gemini API endpoint (tests point it at a local fake).",
    )
    model: str = Field(default="gemini-2.5-flash", description="Gemini model name.")
    model_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="How long a model request may wait for its first streamed piece (and for "
        "any one read).",
    )
    model_stall_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="A model stream silent this long after its first piece is cut and tried again.",
    )
    model_retry_attempts: int = Field(
        default=4,
        ge=1,
        description="Attempts per model step, first included: 429, 5xx, cut and stalled "
        "streams are retried within the turn, the user seeing that it is retrying.",
    )
    model_retry_initial_delay_s: float = Field(default=1.0, description="First retry delay.")
    model_retry_max_delay_s: float = Field(default=8.0, description="Longest retry delay.")
    model_retry_after_max_s: float = Field(
        default=20.0,
        ge=0,
        description="Longest server-asked delay (RetryInfo) a turn waits for; a longer one "
        "ends the turn with rate_limited.",
    )
    max_output_tokens: int = Field(
        default=16384,
        ge=1,
        description="Output token limit of one model step (thinking included); an answer cut "
        "there says so.",
    )
    turn_deadline_s: float = Field(
        default=300.0,
        gt=0,
        # The function may run 540 s and Pub/Sub waits 600 s for its ack: a minute stays for
        # the last writes.
        le=480.0,
        description="Deadline of a whole turn's model work, from its first attempt: past it the "
        "turn ends with model_unavailable, keeping the text so far. At most 480 (the function "
        "timeout is 540 s).",
    )
    history_token_budget: int = Field(
        default=8000,
        ge=0,
        description="Tokens (about 4 characters each) of earlier conversation and session "
        "summary sent to the model.",
    )
    history_events: int = Field(
        default=40, ge=0, description="How many earlier final messages are sent to the model."
    )
    piece_interval_ms: int = Field(
        default=150, ge=0, description="Streamed text is stored at most this often per turn."
    )
    offline_piece_delay_ms: int = Field(
        default=60, ge=0, description="Pause between pieces of an offline answer."
    )
    max_delivery_attempts: int = Field(
        default=5,
        ge=1,
        description="Attempts at one turn before a transient failure becomes an error event; "
        "match the subscription's dead-letter max_delivery_attempts.",
    )
    turn_lease_s: float = Field(
        default=600.0,
        description="How long a running turn holds its session before another turn may take over.",
    )
    queued_hold_s: float = Field(
        default=3600.0,
        gt=0,
        description="How long a turn the edge accepted, and no attempt has started, keeps a "
        "later turn's copy published without the ordering key from starting (the copy is "
        "acknowledged and dropped: the later turn stays accepted), so turns stay in order while "
        "Pub/Sub is slow.",
    )
    turn_heartbeat_s: float = Field(
        default=10.0,
        gt=0,
        description="A running turn says it is alive this often; after 3 missed beats it is taken "
        "for dead: a copy of it takes over, or the sweeper drives it again.",
    )
    turns_topic: str = Field(
        default="deploychat-turns",
        description="Pub/Sub topic (id) of the chat turns (the sweeper publishes stuck ones).",
    )
    sweep_retry_after_s: float = Field(
        default=60.0,
        gt=0,
        description="After the sweeper publishes a stuck turn again, how long it waits for an "
        "attempt to start before it counts the next try.",
    )
    sweep_max_redrives: int = Field(
        default=3,
        ge=1,
        description="Publishes of a stuck turn without any new attempt before the sweeper closes "
        "it with an error.",
    )
    sweep_unstarted_after_s: float = Field(
        default=180.0,
        gt=0,
        description="A turn accepted this long ago that no attempt has started is published "
        "again by the sweeper (then again after sweep_retry_after_s, doubling, at most 15 min).",
    )
    sweep_batch: int = Field(default=200, ge=1, description="Stuck sessions one sweep handles.")
    max_tool_rounds: int = Field(
        default=6,
        ge=1,
        description="Model steps that may call tools in one turn; past them the model is asked, "
        "with tools off, to sum up.",
    )
    local_sources: bool = Field(
        default=False,
        description="Accept local folders (inside the source root) as sources; off unless "
        "configured (`make dev` and the tests turn it on).",
    )
    local_deploy: bool = Field(
        default=False,
        description="Offer the `local` deployment target (runs apps beside the agent); off "
        "unless configured (`make dev` and the tests turn it on).",
    )
    source_root: Path = Field(
        default_factory=Path.cwd,
        description="The workspace: local folders must be inside it (`..` and symlinks out of "
        "it are refused), and relative paths are read from it.",
        json_schema_extra={"shown_default": "the working directory"},
    )
    work_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "deploychat-work",
        description="Where git sources are cloned.",
        json_schema_extra={"shown_default": "$TMPDIR/deploychat-work"},
    )
    deploy_state_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "deploychat-deployments",
        description="Virtual environments, logs and state of local deployments.",
        json_schema_extra={"shown_default": "$TMPDIR/deploychat-deployments"},
    )
    local_health_timeout_s: float = Field(
        default=90.0, description="How long a local deployment may take to answer HTTP."
    )
    deploy_project: str | None = Field(
        default=None, description="Default Google Cloud project for Cloud Run deployments."
    )
    deploy_region: str = Field(
        default="us-central1", description="Default region for Cloud Run deployments."
    )
    cancel_poll_s: float = Field(
        default=1.0, description="How often a running tool checks whether the turn was cancelled."
    )
    deploy_allowlist: list[str] = Field(
        default_factory=list,
        description='Who may deploy to Cloud Run: a JSON list of emails and "@domain" entries, '
        'e.g. ["alice@example.com", "@example.org"] (a domain entry matches that domain '
        "exactly, not its subdomains). Only the session owner's verified email counts. Empty: "
        "nobody.",
    )
    build_service_account: str | None = Field(
        default=None,
        description="Email of the service account the agent's Cloud Builds run as (the "
        "project's default build identity if unset).",
    )
    app_service_account: str | None = Field(
        default=None,
        description="Email of the service account deployed Cloud Run services run as (Cloud "
        "Run's default if unset).",
    )
    deploy_allow_unauthenticated: bool = Field(
        default=False,
        description="Make deployed Cloud Run services public (allUsers may invoke them).",
    )
    cloudbuild_endpoint: str | None = Field(
        default=None,
        description="Cloud Build API endpoint override, with anonymous credentials: local fakes "
        "only.",
    )
    storage_endpoint: str | None = Field(
        default=None,
        description="Cloud Storage endpoint override, with anonymous credentials: local fakes "
        "only.",
    )

    @field_validator("deploy_allowlist")
    @classmethod
    def _allowlist_entries(cls, entries: list[str]) -> list[str]:
        out = []
        for entry in entries:
            clean = entry.strip().lower()
            if not re.fullmatch(r"[^@\s]*@[a-z0-9.-]+\.[a-z]{2,}", clean):
                raise ValueError(f"{entry!r} is neither an email nor an @domain")
            out.append(clean)
        return out
