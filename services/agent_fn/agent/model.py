"""The language model behind the agent: Gemini through google-genai, with function calling.

A turn talks to the model through a `ModelSession`: `stream()` yields the answer's text and the
tool calls the model asks for; `add_tool_results()` hands back what the tools returned, and the
next `stream()` continues from there. The offline stand-in (offline.py) has the same shape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from deploychat.errors import PermanentError, TransientError

from .settings import AgentSettings

log = logging.getLogger(__name__)

# What Google's APIs answer when a retry may succeed.
_RETRYABLE_STATUS = (408, 429, 500, 502, 503, 504)


@dataclass(frozen=True)
class HistoryMessage:
    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True)
class ToolCall:
    name: str
    args: dict[str, Any]
    call_id: str | None = None


@dataclass(frozen=True)
class ToolResult:
    call: ToolCall
    response: dict[str, Any]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema


@dataclass
class TurnContext:
    """What the model needs besides the history: tools, and the session's state in words."""

    tools: Sequence[ToolSpec] = ()
    notes: list[str] = field(default_factory=list)


class ModelSession(Protocol):
    def stream(self) -> Iterator[str | ToolCall]:
        """One model step. Raises TransientError or PermanentError."""
        ...

    def add_tool_results(self, results: list[ToolResult]) -> None: ...


class Model(Protocol):
    offline: bool

    def start(
        self, history: Sequence[HistoryMessage], user_text: str, context: TurnContext
    ) -> ModelSession: ...


SYSTEM_PROMPT = """\
You are deploychat, an assistant that deploys developers' applications to Google Cloud.
Stay on that job: analysing repositories, writing Dockerfiles, deploying them (to this machine
for a try, or to Cloud Run) and explaining deployments; politely decline anything else.

Use the tools rather than guessing: analyse_repository before you say what an app is,
generate_dockerfile to write a Dockerfile (it is shown to the user by the tool: do not repeat
it), request_deployment to deploy (it asks the user to confirm; the deployment starts only when
they say yes, so tell them to confirm). Never claim a deployment happened unless a tool said so.
Be concise and use Markdown, with code blocks for commands and files.
"""


class GeminiModel:
    offline = False

    def __init__(self, client: genai.Client, settings: AgentSettings) -> None:
        self._client = client
        self._model = settings.model

    def start(
        self, history: Sequence[HistoryMessage], user_text: str, context: TurnContext
    ) -> GeminiSession:
        contents = [
            types.Content(
                role="model" if m.role == "assistant" else "user", parts=[types.Part(text=m.text)]
            )
            for m in history
        ]
        contents.append(types.Content(role="user", parts=[types.Part(text=user_text)]))
        system = SYSTEM_PROMPT + "".join(f"\n{note}" for note in context.notes)
        config = types.GenerateContentConfig(
            system_instruction=system,
            tools=[
                types.Tool(
                    function_declarations=[
                        types.FunctionDeclaration(
                            name=t.name,
                            description=t.description,
                            parameters_json_schema=t.parameters,
                        )
                        for t in context.tools
                    ]
                )
            ]
            if context.tools
            else None,
            # We run the tools ourselves: each call becomes stored events, exactly once.
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        return GeminiSession(self._client, self._model, contents, config)


class GeminiSession:
    def __init__(
        self,
        client: genai.Client,
        model: str,
        contents: list[types.Content],
        config: types.GenerateContentConfig,
    ) -> None:
        self._client = client
        self._model = model
        self._contents = contents
        self._config = config

    def stream(self) -> Iterator[str | ToolCall]:
        parts: list[types.Part] = []
        try:
            for chunk in self._client.models.generate_content_stream(
                model=self._model, contents=self._contents, config=self._config
            ):
                for part in _parts(chunk):
                    parts.append(part)
                    if part.function_call is not None and part.function_call.name:
                        call = part.function_call
                        yield ToolCall(call.name or "", dict(call.args or {}), call.id)
                    elif part.text and not part.thought:
                        yield part.text
        except genai_errors.APIError as exc:
            raise classify_api_error(exc) from exc
        except (httpx2.TransportError, httpx2.TimeoutException) as exc:
            raise TransientError(
                f"the model could not be reached: {exc}", "model_unavailable"
            ) from exc
        # The model's turn goes back as it came (thought signatures included), as the API needs.
        self._contents.append(types.Content(role="model", parts=parts))

    def add_tool_results(self, results: list[ToolResult]) -> None:
        self._contents.append(
            types.Content(
                role="user",
                parts=[
                    types.Part(
                        function_response=types.FunctionResponse(
                            id=r.call.call_id, name=r.call.name, response=r.response
                        )
                    )
                    for r in results
                ],
            )
        )


def _parts(chunk: types.GenerateContentResponse) -> list[types.Part]:
    if not chunk.candidates:
        return []
    content = chunk.candidates[0].content
    return list(content.parts or []) if content is not None else []


def classify_api_error(exc: genai_errors.APIError) -> TransientError | PermanentError:
    detail = f"the model answered {exc.code}: {exc.message or exc.status or ''}".strip()
    if exc.code in _RETRYABLE_STATUS:
        return TransientError(detail, "model_unavailable")
    if exc.code in (401, 403, 404):
        return PermanentError(detail, "model_unavailable")
    return PermanentError(detail, "agent_failed")


def build_model(settings: AgentSettings, client: genai.Client | None = None) -> Model:
    if client is None and not settings.use_vertex and settings.gemini_api_key is None:
        from .offline import OfflineModel

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
