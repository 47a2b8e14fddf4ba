"""The model's every answer, refusal and failure, read through the real google-genai client from
the fake Gemini API (tests/support/fake_gemini.py, shaped like the public API). No stack: the
whole-function journeys are in test_model_outcomes.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent.model import (
    GeminiModel,
    GeminiSession,
    ModelError,
    Retrying,
    Stopped,
    StreamItem,
    ToolCall,
    ToolResult,
    ToolSpec,
    TurnContext,
    make_genai_client,
)
from agent.settings import AgentSettings
from tests.support.fake_gemini import (
    FakeGemini,
    Reply,
    Script,
    api_key_invalid,
    overloaded,
    permission_denied,
    quota_exhausted,
)

TOOLS = [
    ToolSpec(
        "analyse_repository",
        "Analyse a repository.",
        {"type": "object", "properties": {"source": {"type": "string"}}, "required": ["source"]},
    )
]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGemini]:
    fake = FakeGemini().start()
    yield fake
    fake.stop()


def _model(fake: FakeGemini, **overrides: Any) -> GeminiModel:
    tuned: dict[str, Any] = {
        "model_timeout_s": 10,
        "model_stall_timeout_s": 1.0,
        "model_retry_initial_delay_s": 0.05,
        "model_retry_max_delay_s": 0.2,
    }
    settings = AgentSettings(
        GEMINI_API_KEY="fake-key", GOOGLE_GEMINI_BASE_URL=fake.url, **{**tuned, **overrides}
    )
    return GeminiModel(make_genai_client(settings), settings)


def _session(fake: FakeGemini, uid: str, script: Script, **overrides: Any) -> GeminiSession:
    fake.script(uid, script)
    return _model(fake, **overrides).start([], f"go [[{uid}]]", TurnContext(tools=TOOLS))


def _text(items: list[StreamItem]) -> str:
    return "".join(i for i in items if isinstance(i, str))


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("MAX_TOKENS", "cut off at the length limit"),
        ("SAFETY", "safety filters"),
        ("RECITATION", "existing material"),
        ("BLOCKLIST", "blocked terms"),
        ("PROHIBITED_CONTENT", "prohibited content"),
        ("SPII", "sensitive personal information"),
        ("OTHER", "without saying why"),
    ],
)
def test_every_finish_ends_with_a_sentence(
    fake: FakeGemini, uid: str, reason: str, words: str
) -> None:
    session = _session(
        fake, uid, Script(replies=[Reply(chunks=["Part ", "one"], finish_reason=reason)])
    )
    items = list(session.stream())
    assert _text(items) == "Part one"
    assert isinstance(items[-1], Stopped) and items[-1].reason == reason
    assert words in items[-1].note


def test_a_stop_adds_nothing(fake: FakeGemini, uid: str) -> None:
    items = list(_session(fake, uid, Script(replies=[Reply(chunks=["All ", "good."])])).stream())
    assert items == ["All ", "good."]


def test_a_refused_prompt_is_said_to_be(fake: FakeGemini, uid: str) -> None:
    items = list(_session(fake, uid, Script(replies=[Reply(block_reason="SAFETY")])).stream())
    assert len(items) == 1 and isinstance(items[0], Stopped)
    assert items[0].reason == "SAFETY" and "declined to answer this message" in items[0].note


def test_a_malformed_call_is_asked_again_once(fake: FakeGemini, uid: str) -> None:
    script = Script(
        replies=[
            Reply(chunks=["Let me see. "], finish_reason="MALFORMED_FUNCTION_CALL"),
            Reply(chunks=["Let me see. "], function_call=("analyse_repository", {"source": "."})),
        ]
    )
    items = list(_session(fake, uid, script).stream())
    assert isinstance(items[1], Retrying)
    assert items[2:] == ["Let me see. ", ToolCall("analyse_repository", {"source": "."})]
    assert len(fake.calls_for(uid)) == 2


def test_a_malformed_call_twice_stops_with_words(fake: FakeGemini, uid: str) -> None:
    script = Script(replies=[Reply(finish_reason="MALFORMED_FUNCTION_CALL")])
    items = list(_session(fake, uid, script).stream())
    assert [type(i) for i in items] == [Retrying, Stopped]
    assert "could not be read" in items[-1].note  # type: ignore[union-attr]
    assert len(fake.calls_for(uid)) == 2


def test_a_bad_key_is_model_unavailable_in_plain_words(fake: FakeGemini, uid: str) -> None:
    session = _session(fake, uid, Script(always_error=api_key_invalid()))
    with pytest.raises(ModelError) as caught:
        list(session.stream())
    assert (caught.value.code, caught.value.retryable) == ("model_unavailable", False)
    assert "API key not valid" not in caught.value.message
    assert "API_KEY_INVALID" in caught.value.detail
    assert len(fake.calls_for(uid)) == 1, "a bad key is not retried"


def test_a_disabled_api_is_model_unavailable(fake: FakeGemini, uid: str) -> None:
    with pytest.raises(ModelError) as caught:
        list(_session(fake, uid, Script(always_error=permission_denied())).stream())
    assert caught.value.code == "model_unavailable" and "123456" not in caught.value.message


def test_retry_info_is_honoured(fake: FakeGemini, uid: str) -> None:
    script = Script(errors=[quota_exhausted("2s")], replies=[Reply(chunks=["fine"])])
    items = list(_session(fake, uid, script).stream())
    assert isinstance(items[0], Retrying) and items[0].delay_s == 2.0
    assert items[1:] == ["fine"]
    first, second = fake.calls_for(uid)
    assert second.at - first.at >= 1.9


def test_a_retry_delay_past_the_cap_ends_at_once_as_rate_limited(
    fake: FakeGemini, uid: str
) -> None:
    session = _session(fake, uid, Script(always_error=quota_exhausted("47s")))
    started = time.monotonic()
    with pytest.raises(ModelError) as caught:
        list(session.stream())
    assert time.monotonic() - started < 5
    assert (caught.value.code, caught.value.retryable) == ("rate_limited", True)
    assert "47 seconds" in caught.value.message and "billing" not in caught.value.message


def test_an_overloaded_model_is_retried_then_given_up(fake: FakeGemini, uid: str) -> None:
    session = _session(fake, uid, Script(always_error=overloaded()), model_retry_attempts=3)
    items: list[StreamItem] = []
    with pytest.raises(ModelError) as caught:
        for item in session.stream():
            items.append(item)
    assert [type(i) for i in items] == [Retrying, Retrying]
    assert (caught.value.code, caught.value.retryable) == ("model_unavailable", True)
    assert len(fake.calls_for(uid)) == 3


def test_a_stalled_stream_is_cut_and_asked_again(fake: FakeGemini, uid: str) -> None:
    script = Script(
        replies=[
            Reply(chunks=["one ", "two ", "three"], stall_after=2, stall_s=10),
            Reply(chunks=["one ", "two ", "three"]),
        ]
    )
    started = time.monotonic()
    items = list(_session(fake, uid, script).stream())
    assert time.monotonic() - started < 6
    cut = next(i for i, item in enumerate(items) if isinstance(item, Retrying))
    assert items[:cut] == ["one ", "two "] and items[cut + 1 :] == ["one ", "two ", "three"]


def test_a_stream_that_never_starts_is_cut_at_the_first_timeout(fake: FakeGemini, uid: str) -> None:
    script = Script(
        replies=[Reply(chunks=["late"], stall_after=0, stall_s=10), Reply(chunks=["ok"])]
    )
    items = list(_session(fake, uid, script, model_timeout_s=1.0).stream())
    assert isinstance(items[0], Retrying) and items[1:] == ["ok"]


def test_the_deadline_cuts_a_slow_stream(fake: FakeGemini, uid: str) -> None:
    fake.script(uid, Script(replies=[Reply(chunks=[f"w{i} " for i in range(40)], delay_s=0.1)]))
    model = _model(fake)
    context = TurnContext(tools=TOOLS, deadline=time.monotonic() + 1.5)
    items: list[StreamItem] = []
    with pytest.raises(ModelError) as caught:
        for item in model.start([], f"slow [[{uid}]]", context).stream():
            items.append(item)
    assert (caught.value.code, caught.value.retryable) == ("model_unavailable", True)
    assert 3 <= len(items) < 40


def test_thoughts_are_hidden_and_go_back_with_their_signature(fake: FakeGemini, uid: str) -> None:
    script = Script(
        replies=[
            Reply(
                chunks=["Looking."],
                thought="The user wants an analysis.",
                function_call=("analyse_repository", {"source": "."}),
            ),
            Reply(chunks=["Done."]),
        ]
    )
    session = _session(fake, uid, script)
    items = list(session.stream())
    assert items == ["Looking.", ToolCall("analyse_repository", {"source": "."})]
    session.add_tool_results(
        [ToolResult(ToolCall("analyse_repository", {"source": "."}), {"ok": 1})]
    )
    assert list(session.stream()) == ["Done."]
    sent = fake.calls_for(uid)[1].body["contents"]
    assert sent[1]["role"] == "model" and sent[1]["parts"][0]["thoughtSignature"] == "c2lnbmF0dXJl"
    assert "functionResponse" in sent[2]["parts"][0]


def test_the_wrap_up_has_tools_off(fake: FakeGemini, uid: str) -> None:
    script = Script(
        replies=[Reply(chunks=["Again."], function_call=("analyse_repository", {"source": "."}))]
    )
    session = _session(fake, uid, script)
    call = list(session.stream())[-1]
    assert isinstance(call, ToolCall)
    session.add_tool_results([ToolResult(call, {"summary": "a Flask app"})])
    assert list(session.wrap_up()) == ["Again."]  # the same model, its call withheld
    last = fake.calls_for(uid)[-1]
    assert last.tools_off and last.body["toolConfig"]["functionCallingConfig"]["mode"] == "NONE"
    assert "every tool call this message allows" in str(last.body["systemInstruction"])


def test_the_output_limit_is_sent(fake: FakeGemini, uid: str) -> None:
    list(
        _session(fake, uid, Script(replies=[Reply(chunks=["x"])]), max_output_tokens=1234).stream()
    )
    assert fake.calls_for(uid)[0].body["generationConfig"]["maxOutputTokens"] == 1234


def test_history_with_two_user_turns_in_a_row_is_sent_alternating(
    fake: FakeGemini, uid: str
) -> None:
    from agent.model import HistoryMessage

    fake.script(uid, Script(replies=[Reply(chunks=["ok"])]))
    history = [
        HistoryMessage("assistant", "orphan"),
        HistoryMessage("user", "a"),
        HistoryMessage("user", "b"),
        HistoryMessage("assistant", "c"),
        HistoryMessage("user", "d"),
    ]
    list(_model(fake).start(history, f"e [[{uid}]]", TurnContext(tools=TOOLS)).stream())
    roles = [c["role"] for c in fake.calls_for(uid)[0].body["contents"]]
    assert roles == ["user", "model", "user"]


def test_a_cut_stream_is_asked_again_without_repeating(fake: FakeGemini, uid: str) -> None:
    # The connection closes mid-body (no last chunk): the client sees a broken stream.
    script = Script(
        replies=[
            Reply(chunks=["a ", "b ", "c"], stall_after=2, stall_s=0),
            Reply(chunks=["a ", "b ", "c"]),
        ]
    )
    items = list(_session(fake, uid, script).stream())
    cut = next(i for i, item in enumerate(items) if isinstance(item, Retrying))
    assert items[:cut] == ["a ", "b "] and items[cut + 1 :] == ["a ", "b ", "c"]
