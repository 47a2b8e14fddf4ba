"""The language model behind the agent: Gemini through google-genai, with function calling.

A turn talks to the model through a `ModelSession`: `stream()` yields the answer's text and the
tool calls the model asks for; `add_tool_results()` hands back what the tools returned, and the
next `stream()` continues from there. The offline stand-in (offline.py) has the same shape.

Besides text and calls, a step may yield `Retrying` (the step failed or stalled and is being
tried again: what it yielded so far is void) and, last, `Stopped` (the model ended short of a
complete answer, with the sentence that tells the user so). Failures that no retry within the
turn's deadline mends raise `ModelError`, which carries a sentence for the user.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx2
import requests
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from .model_errors import (
    DEADLINE_MESSAGE,
    RETRY_ONCE,
    STALLED_MESSAGE,
    UNREACHABLE_MESSAGE,
    ModelBusy,
    ModelError,
    block_note,
    classify_api_error,
    finish_note,
)
from .model_stream import DeadlinePassed, StreamStalled, watched
from .settings import AgentSettings

log = logging.getLogger(__name__)

# A connection refused, reset or cut mid-stream: httpx2 for the API key, requests (through
# google-auth) for Vertex AI.
_TRANSPORT_ERRORS = (
    httpx2.TransportError,
    httpx2.TimeoutException,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.Timeout,
)

__all__ = [
    "GeminiModel",
    "HistoryMessage",
    "Model",
    "ModelBusy",
    "ModelError",
    "ModelSession",
    "Retrying",
    "Stopped",
    "StreamItem",
    "ToolCall",
    "ToolResult",
    "ToolSpec",
    "TurnContext",
    "build_model",
    "classify_api_error",
    "make_genai_client",
]


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


@dataclass(frozen=True)
class Retrying:
    """The step is tried again after `delay_s`: the text and calls it yielded so far are void."""

    reason: str  # for the logs
    delay_s: float


@dataclass(frozen=True)
class Stopped:
    """The model ended this answer short (a block, a cut, a refusal): `note` tells the user."""

    reason: str  # the API's finishReason or blockReason
    note: str


StreamItem = str | ToolCall | Retrying | Stopped


@dataclass
class TurnContext:
    """What the model needs besides the history: tools, the session's state, the deadline."""

    tools: Sequence[ToolSpec] = ()
    notes: list[str] = field(default_factory=list)
    # time.monotonic() value past which no model work may go on (None: no deadline).
    deadline: float | None = None


class ModelSession(Protocol):
    def stream(self) -> Iterator[StreamItem]:
        """One model step. Raises ModelError, TransientError or PermanentError."""
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

WRAP_UP_INSTRUCTION = """
You have used every tool call this message allows, and tools are now off. Do not try to call
one. In a few sentences, tell the user what you did and found so far, say that you stopped
because of the limit on tool calls per message, and what they can ask next to go on."""


class GeminiModel:
    offline = False

    def __init__(
        self,
        client: genai.Client,
        settings: AgentSettings,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._settings = settings
        self._clock = clock
        self._sleep = sleep

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
            max_output_tokens=self._settings.max_output_tokens,
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
        deadline = context.deadline
        if deadline is None:
            deadline = self._clock() + self._settings.turn_deadline_s
        return GeminiSession(
            self._client,
            self._settings,
            alternate(contents),
            config,
            deadline=deadline,
            clock=self._clock,
            sleep=self._sleep,
        )


class GeminiSession:
    def __init__(
        self,
        client: genai.Client,
        settings: AgentSettings,
        contents: list[types.Content],
        config: types.GenerateContentConfig,
        *,
        deadline: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._settings = settings
        self._model = settings.model
        self._contents = contents
        self._config = config
        self._deadline = deadline
        self._clock = clock
        self._sleep = sleep

    def stream(self) -> Iterator[StreamItem]:
        return self._step(self._config)

    def wrap_up(self) -> Iterator[StreamItem]:
        """One last step with tools off, asking the model to sum up (the tool-round limit)."""
        config = self._config.model_copy(
            update={
                "system_instruction": f"{self._config.system_instruction}{WRAP_UP_INSTRUCTION}",
                # The declarations stay (the history holds calls to them), but none may be made.
                "tool_config": types.ToolConfig(
                    function_calling_config=types.FunctionCallingConfig(
                        mode=types.FunctionCallingConfigMode.NONE
                    )
                ),
            }
        )
        return self._step(config)

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

    # ---------------------------------------------------------------- one step

    def _step(self, config: types.GenerateContentConfig) -> Iterator[StreamItem]:
        attempt = 0
        malformed_retried = False
        while True:
            attempt += 1
            if self._clock() >= self._deadline:
                raise ModelError(DEADLINE_MESSAGE, "model_unavailable", retryable=True)
            parts: list[types.Part] = []
            finish = _Finish()
            try:
                yield from self._once(config, parts, finish)
            except ModelBusy as busy:
                delay, too_long = self._delay(attempt, busy)
                if delay is None:
                    raise busy.gave_up(waited_too_long=too_long) from busy
                log.warning(
                    "model step failed (attempt %d), retrying in %.2f s: %s",
                    attempt,
                    delay,
                    busy.detail,
                )
                yield Retrying(busy.detail, delay)
                self._sleep(delay)
                continue
            if finish.reason in RETRY_ONCE and not malformed_retried:
                malformed_retried = True
                log.warning("model finished with %s; asking once more", finish.reason)
                yield Retrying(finish.reason, 0.0)
                continue
            # The model's turn goes back as it came (thought signatures included), as the API
            # needs.
            self._contents.append(types.Content(role="model", parts=parts))
            if finish.blocked is not None:
                yield Stopped(finish.blocked, block_note(finish.blocked))
            elif (note := finish_note(finish.reason)) is not None:
                yield Stopped(finish.reason, note)
            return

    def _once(
        self, config: types.GenerateContentConfig, parts: list[types.Part], finish: _Finish
    ) -> Iterator[StreamItem]:
        """One request: its text and calls, and into `finish` how it ended."""
        first_timeout = self._settings.model_timeout_s
        try:
            for chunk in watched(
                lambda: self._client.models.generate_content_stream(
                    model=self._model, contents=self._contents, config=config
                ),
                first_timeout=first_timeout,
                stall_timeout=self._settings.model_stall_timeout_s,
                deadline=self._deadline,
                clock=self._clock,
            ):
                feedback = chunk.prompt_feedback
                if feedback is not None and feedback.block_reason is not None:
                    reason = _name(feedback.block_reason)
                    log.warning(
                        "the model refused the prompt: %s %s",
                        reason,
                        feedback.block_reason_message or "",
                    )
                    finish.blocked = reason
                if not chunk.candidates:
                    continue
                candidate = chunk.candidates[0]
                for part in list(candidate.content.parts or []) if candidate.content else []:
                    parts.append(part)
                    if part.function_call is not None and part.function_call.name:
                        call = part.function_call
                        yield ToolCall(call.name or "", dict(call.args or {}), call.id)
                    elif part.text and not part.thought:
                        yield part.text
                if candidate.finish_reason is not None:
                    reason = finish.reason = _name(candidate.finish_reason)
                    if reason != "STOP":
                        log.warning(
                            "the model finished with %s: %s", reason, candidate.finish_message
                        )
        except genai_errors.APIError as exc:
            raise classify_api_error(exc) from exc
        except _TRANSPORT_ERRORS as exc:
            raise ModelBusy(
                UNREACHABLE_MESSAGE,
                "model_unavailable",
                detail=f"the model could not be reached: {exc!r}",
            ) from exc
        except StreamStalled as exc:
            raise ModelBusy(STALLED_MESSAGE, "model_unavailable", detail=str(exc)) from exc
        except DeadlinePassed as exc:
            raise ModelError(
                DEADLINE_MESSAGE,
                "model_unavailable",
                retryable=True,
                detail=f"the turn's deadline ({self._settings.turn_deadline_s:g} s) passed",
            ) from exc

    def _delay(self, attempt: int, busy: ModelBusy) -> tuple[float | None, bool]:
        """How long to wait before the next attempt, or None to give up (and whether the
        server asked for a longer wait than we allow)."""
        if attempt >= self._settings.model_retry_attempts:
            return None, False
        if busy.retry_after_s is not None:
            if busy.retry_after_s > self._settings.model_retry_after_max_s:
                return None, True
            delay = busy.retry_after_s
        else:
            base = self._settings.model_retry_initial_delay_s * 2 ** (attempt - 1)
            delay = min(self._settings.model_retry_max_delay_s, base) * random.uniform(0.8, 1.0)
        if self._clock() + delay >= self._deadline:
            return None, busy.retry_after_s is not None
        return delay, False


@dataclass
class _Finish:
    reason: str = "STOP"  # the candidate's finishReason (a stream without one ended normally)
    blocked: str | None = None  # promptFeedback.blockReason: the prompt was refused


def _name(value: Any) -> str:
    return str(getattr(value, "value", value))


def alternate(contents: list[types.Content]) -> list[types.Content]:
    """The contents as the API wants them: starting with the user, roles alternating.

    Adjacent turns of one role are merged (their parts joined), so no history, however it was
    stored, is sent with two user turns in a row.
    """
    out: list[types.Content] = []
    for content in contents:
        if not out and content.role != "user":
            continue
        if out and out[-1].role == content.role:
            out[-1] = types.Content(
                role=content.role, parts=[*(out[-1].parts or []), *(content.parts or [])]
            )
            continue
        out.append(content)
    return out


def build_model(settings: AgentSettings, client: genai.Client | None = None) -> Model:
    if client is None and not settings.use_vertex and settings.gemini_api_key is None:
        from .offline import OfflineModel

        log.warning("no model credentials: the agent runs in offline mode")
        return OfflineModel(settings.offline_piece_delay_ms / 1000)
    return GeminiModel(client or make_genai_client(settings), settings)


def make_genai_client(settings: AgentSettings) -> genai.Client:
    http_options = types.HttpOptions(
        base_url=settings.gemini_base_url,
        # Per read; the watchdog (model_stream.py) cuts a stall sooner. No SDK retries: a
        # retry is ours, so the user can be told, the server's RetryInfo heeded, the deadline
        # kept.
        timeout=int(settings.model_timeout_s * 1000),
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
