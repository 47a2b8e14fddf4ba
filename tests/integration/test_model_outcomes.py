"""Every outcome of the model reaches the user as something true: through the whole stack (edge,
Pub/Sub, the function with the real google-genai client, Firestore) against the fake Gemini API.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.cloud import firestore

from devstack.stack import Stack
from tests.support.fake_gemini import (
    FakeGemini,
    Reply,
    Script,
    api_key_invalid,
    quota_exhausted,
)
from tests.support.identity import sign_up_guest
from tests.support.ws import Frame, RawClient, assert_contiguous, events, reply_text

LOOP = Reply(
    chunks=["Checking again. "],
    function_call=("analyse_repository", {"source": "./examples/hello-flask"}),
)


# Short enough for a test to pass it, long enough for every other turn here (a few seconds).
DEADLINE_S = 12


@pytest.fixture(scope="module")
def tuned(stack: Stack) -> Iterator[Stack]:
    """The function with a short stall timeout and turn deadline, for this module (one restart:
    restarts cost tens of seconds on a loaded machine)."""
    saved = dict(stack.config.function_env)
    stack.config.function_env = {
        **saved,
        "DEPLOYCHAT_MODEL_STALL_TIMEOUT_S": "2",
        "DEPLOYCHAT_TURN_DEADLINE_S": str(DEADLINE_S),
    }
    stack.restart_function()
    yield stack
    stack.config.function_env = saved
    stack.restart_function()


def _turn(stack: Stack, uid: str, text: str, timeout: float = 45) -> list[Frame]:
    """One turn in a new session of a new (guest) user: `connected`, then the turn's frames."""
    user = sign_up_guest()
    with RawClient(stack.ws_url, token=user.id_token) as client:
        connected = client.init()
        client.send({"type": "chat", "id": f"m-{uid}", "content": f"{text} [[{uid}]]"})
        frames = [connected, *client.turn(f"m-{uid}", timeout=timeout)]
    assert_contiguous(frames)
    return frames


def _errors(frames: list[Frame]) -> list[Frame]:
    return [f for f in events(frames) if f["type"] == "error"]


def _statuses(frames: list[Frame]) -> list[str | None]:
    """What the typing events said, in order (None: plain typing)."""
    return [f.get("status") for f in events(frames) if f["type"] == "typing" and f["is_typing"]]


def _answer(frames: list[Frame], uid: str) -> str:
    pieces, final = reply_text(frames, f"m-{uid}")
    assert final["content"] == pieces, "the pieces add up to the final message"
    assert final["content"].strip(), "never an empty answer"
    return str(final["content"])


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
def test_every_finish_reaches_the_user_in_words(
    tuned: Stack, fake_gemini: FakeGemini, uid: str, reason: str, words: str
) -> None:
    fake_gemini.script(
        uid, Script(replies=[Reply(chunks=["Here is ", "part one."], finish_reason=reason)])
    )
    frames = _turn(tuned, uid, "tell me")
    answer = _answer(frames, uid)
    assert answer.startswith("Here is part one.\n\n") and words in answer
    assert not _errors(frames)


def test_a_refused_prompt_is_said_to_be(tuned: Stack, fake_gemini: FakeGemini, uid: str) -> None:
    fake_gemini.script(uid, Script(replies=[Reply(block_reason="PROHIBITED_CONTENT")]))
    frames = _turn(tuned, uid, "something bad")
    assert _answer(frames, uid).startswith("The model declined to answer this message")
    assert not _errors(frames)


def test_a_malformed_call_is_retried_once_and_the_user_sees_the_retry(
    tuned: Stack, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(
        uid,
        Script(
            replies=[
                Reply(chunks=["Let me look. "], finish_reason="MALFORMED_FUNCTION_CALL"),
                Reply(chunks=["Let me look. ", "It is fine."]),
            ]
        ),
    )
    frames = _turn(tuned, uid, "look")
    assert _answer(frames, uid) == "Let me look. It is fine."
    assert _statuses(frames) == [None, "retrying", None]
    assert len(fake_gemini.calls_for(uid)) == 2


def test_a_malformed_call_twice_ends_in_words(
    tuned: Stack, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(uid, Script(replies=[Reply(finish_reason="MALFORMED_FUNCTION_CALL")]))
    frames = _turn(tuned, uid, "look")
    assert "could not be read" in _answer(frames, uid)
    assert len(fake_gemini.calls_for(uid)) == 2


def test_an_empty_answer_is_never_shown_as_nothing(
    tuned: Stack, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(uid, Script(replies=[Reply(chunks=[])]))
    assert "gave no reply" in _answer(_turn(tuned, uid, "hm"), uid)


def test_a_model_that_loops_on_tools_is_asked_to_sum_up(
    tuned: Stack, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(
        uid,
        Script(
            replies=[LOOP],
            tools_off=Reply(chunks=["I analysed hello-flask: ", "a Flask app. I stopped there."]),
        ),
    )
    frames = _turn(tuned, uid, "analyse ./examples/hello-flask forever", timeout=90)
    answer = _answer(frames, uid)
    assert answer.startswith("Checking again.")
    assert answer.endswith("I analysed hello-flask: a Flask app. I stopped there.")
    calls = fake_gemini.calls_for(uid)
    assert len(calls) == 7  # six tool rounds (the default), then the summary
    assert [c.tools_off for c in calls] == [False] * 6 + [True]
    # The same call gives the same result, run once: one analysis card.
    assert len([f for f in events(frames) if f["type"] == "analysis"]) == 1


def test_at_the_tool_limit_a_silent_model_gets_a_fixed_sentence(
    tuned: Stack, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(uid, Script(replies=[LOOP], tools_off=Reply(chunks=[])))
    frames = _turn(tuned, uid, "analyse ./examples/hello-flask forever", timeout=90)
    assert "I stopped after 6 rounds of tool calls" in _answer(frames, uid)


def test_a_stalled_stream_is_cut_and_retried_within_the_attempt(
    tuned: Stack, fake_gemini: FakeGemini, uid: str
) -> None:
    words = [f"word{i} " for i in range(6)]
    fake_gemini.script(
        uid,
        Script(
            replies=[
                Reply(chunks=words, delay_s=0.05, stall_after=3, stall_s=20),
                Reply(chunks=words, delay_s=0.05),
            ]
        ),
    )
    frames = _turn(tuned, uid, "stall")
    assert _answer(frames, uid) == "".join(words), "no text twice"
    assert "retrying" in _statuses(frames)
    assert len(fake_gemini.calls_for(uid)) == 2
    assert _attempts(tuned, frames, uid) == 1, "no Pub/Sub redelivery was needed"


def test_past_the_deadline_the_turn_ends_keeping_its_text(
    tuned: Stack, fake_gemini: FakeGemini, uid: str
) -> None:
    # 0.4 s a piece for 60 pieces: twice the deadline.
    fake_gemini.script(
        uid, Script(replies=[Reply(chunks=[f"w{i} " for i in range(60)], delay_s=0.4)])
    )
    frames = _turn(tuned, uid, "slow", timeout=DEADLINE_S + 30)
    answer = _answer(frames, uid)
    assert answer.startswith("w0 w1 ") and len(answer.split()) < 60
    errors = _errors(frames)
    assert [(e["code"], e["retryable"]) for e in errors] == [("model_unavailable", True)]
    kinds = [f["type"] for f in events(frames)]
    assert kinds[-3:] == ["chat", "error", "typing"]


def test_a_bad_key_is_model_unavailable_in_plain_words(
    tuned: Stack, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(uid, Script(always_error=api_key_invalid()))
    frames = _turn(tuned, uid, "hello")
    errors = _errors(frames)
    assert [(e["code"], e["retryable"]) for e in errors] == [("model_unavailable", False)]
    assert "API key not valid" not in errors[0]["message"]
    assert "credentials" in errors[0]["message"]
    assert len(fake_gemini.calls_for(uid)) == 1
    assert tuned.function is not None
    assert "API_KEY_INVALID" in tuned.function.tail(400), "the API's words go to the logs"


def test_retry_info_is_honoured_and_the_user_sees_the_retry(
    tuned: Stack, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(uid, Script(errors=[quota_exhausted("2s")], replies=[Reply(chunks=["ok"])]))
    frames = _turn(tuned, uid, "busy")
    assert _answer(frames, uid) == "ok"
    assert _statuses(frames) == [None, "retrying", None]
    first, second = fake_gemini.calls_for(uid)
    assert second.at - first.at >= 1.9


def test_a_quota_that_lasts_is_rate_limited(
    tuned: Stack, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(uid, Script(always_error=quota_exhausted("0.1s")))
    frames = _turn(tuned, uid, "busy")
    errors = _errors(frames)
    assert [(e["code"], e["retryable"]) for e in errors] == [("rate_limited", True)]
    assert "billing" not in errors[0]["message"], "the API's words stay in the logs"
    # The attempts of one turn (DEPLOYCHAT_MODEL_RETRY_ATTEMPTS in the tests), no redelivery.
    assert len(fake_gemini.calls_for(uid)) == 3


def test_history_keeps_alternating_after_a_failed_turn_and_knows_the_session(
    tuned: Stack, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(
        uid,
        Script(
            errors=[api_key_invalid()],
            replies=[
                Reply(
                    chunks=["Looking. "],
                    function_call=("analyse_repository", {"source": "./examples/hello-flask"}),
                ),
                Reply(chunks=["It is a Flask app."]),
                Reply(chunks=["Still a Flask app."]),
            ],
        ),
    )
    user = sign_up_guest()
    with RawClient(tuned.ws_url, token=user.id_token) as client:
        client.init()
        for n, text in enumerate(["first", "analyse ./examples/hello-flask", "and now?"]):
            client.send({"type": "chat", "id": f"{n}-{uid}", "content": f"{text} [[{uid}]]"})
            client.turn(f"{n}-{uid}", timeout=60)
    calls = fake_gemini.calls_for(uid)
    second = calls[1].body["contents"]
    assert [c["role"] for c in second] == ["user", "model", "user"]
    assert "No answer reached the user" in second[1]["parts"][0]["text"]
    last = calls[-1].body
    assert [c["role"] for c in last["contents"]] == ["user", "model"] * 2 + ["user"]
    system = str(last["systemInstruction"])
    assert "hello-flask" in system and '"framework": "flask"' in system


def _attempts(stack: Stack, frames: list[Frame], uid: str) -> int:
    connected = next(f for f in frames if f["type"] == "connected")
    db = firestore.Client(project=stack.config.project)
    turn = (
        db.collection("sessions")
        .document(connected["session_id"])
        .collection("turns")
        .document(f"t-m-{uid}")
        .get()
    )
    return int((turn.to_dict() or {}).get("attempts", 0))
