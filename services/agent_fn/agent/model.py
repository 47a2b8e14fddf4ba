"""The language model behind the agent: Gemini through google-genai, or an offline stand-in."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from deploychat.errors import PermanentError, TransientError

from .settings import AgentSettings

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are deploychat, an assistant that helps developers deploy their applications to "
    "Google Cloud (Cloud Run, Cloud Build, Artifact Registry). Stay on that job: analysing "
    "repositories, writing Dockerfiles, deploying and explaining deployments. Be concise and "
    "use Markdown, with code blocks for commands and files."
)

# What Google's APIs answer when a retry may succeed.
_RETRYABLE_STATUS = (408, 429, 500, 502, 503, 504)


@dataclass(frozen=True)
class HistoryMessage:
    role: Literal["user", "assistant"]
    text: str


class Model(Protocol):
    offline: bool

    def stream(self, history: Sequence[HistoryMessage], user_text: str) -> Iterator[str]:
        """Yield the answer's text as it is generated. Raises TransientError or PermanentError."""
        ...


class GeminiModel:
    offline = False

    def __init__(self, client: genai.Client, settings: AgentSettings) -> None:
        self._client = client
        self._model = settings.model

    def stream(self, history: Sequence[HistoryMessage], user_text: str) -> Iterator[str]:
        contents = [
            types.Content(
                role="model" if m.role == "assistant" else "user", parts=[types.Part(text=m.text)]
            )
            for m in history
        ]
        contents.append(types.Content(role="user", parts=[types.Part(text=user_text)]))
        config = types.GenerateContentConfig(system_instruction=SYSTEM_PROMPT)
        try:
            for chunk in self._client.models.generate_content_stream(
                model=self._model, contents=contents, config=config
            ):
                text = _chunk_text(chunk)
                if text:
                    yield text
        except genai_errors.APIError as exc:
            raise classify_api_error(exc) from exc
        except (httpx2.TransportError, httpx2.TimeoutException) as exc:
            raise TransientError(
                f"the model could not be reached: {exc}", "model_unavailable"
            ) from exc


def classify_api_error(exc: genai_errors.APIError) -> TransientError | PermanentError:
    detail = f"the model answered {exc.code}: {exc.message or exc.status or ''}".strip()
    if exc.code in _RETRYABLE_STATUS:
        return TransientError(detail, "model_unavailable")
    if exc.code in (401, 403, 404):
        return PermanentError(detail, "model_unavailable")
    return PermanentError(detail, "agent_failed")


def _chunk_text(chunk: types.GenerateContentResponse) -> str:
    # `chunk.text` warns on non-text parts; read the parts ourselves.
    if not chunk.candidates:
        return ""
    content = chunk.candidates[0].content
    if content is None or not content.parts:
        return ""
    return "".join(p.text for p in content.parts if p.text and not p.thought)


OFFLINE_NOTICE = (
    "**Offline mode** — no model credentials are configured, so I am answering without Gemini. "
)
OFFLINE_HELP = (
    "Set `GEMINI_API_KEY` (or `GOOGLE_GENAI_USE_VERTEXAI=true` on Google Cloud) for full "
    "answers. Offline, I can still tell you what I do: I analyse a repository, write a "
    "production Dockerfile for it, and deploy it, to this machine or to Cloud Run, with live "
    "progress in this chat."
)


class OfflineModel:
    """Answers every turn without a model, streamed in several pieces like a real one."""

    offline = True

    def __init__(self, piece_delay_s: float) -> None:
        self._delay = piece_delay_s

    def stream(self, history: Sequence[HistoryMessage], user_text: str) -> Iterator[str]:
        quoted = user_text.strip().splitlines()[0][:200]
        text = OFFLINE_NOTICE + f"You said: “{quoted}”.\n\n" + OFFLINE_HELP
        words = text.split(" ")
        step = max(1, len(words) // 6)
        for i in range(0, len(words), step):
            if i:
                time.sleep(self._delay)
            yield " ".join(words[i : i + step]) + (" " if i + step < len(words) else "")


def build_model(settings: AgentSettings, client: genai.Client | None = None) -> Model:
    if client is None and not settings.use_vertex and settings.gemini_api_key is None:
        log.warning("no model credentials: the agent runs in offline mode")
        return OfflineModel(settings.offline_piece_delay_ms / 1000)
    return GeminiModel(client or make_genai_client(settings), settings)


def make_genai_client(settings: AgentSettings) -> genai.Client:
    http_options = types.HttpOptions(
        base_url=settings.gemini_base_url,
        timeout=int(settings.model_timeout_s * 1000),
        # The SDK retries nothing unless told to.
        retry_options=types.HttpRetryOptions(
            attempts=settings.model_retry_attempts,
            initial_delay=settings.model_retry_initial_delay_s,
            max_delay=settings.model_retry_max_delay_s,
            http_status_codes=list(_RETRYABLE_STATUS),
        ),
    )
    if settings.use_vertex:
        return genai.Client(
            vertexai=True,
            project=settings.project_id,
            location=settings.vertex_location,
            http_options=http_options,
        )
    assert settings.gemini_api_key is not None
    return genai.Client(
        api_key=settings.gemini_api_key.get_secret_value(), http_options=http_options
    )
