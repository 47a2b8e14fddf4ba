"""The agent's tools driven by the model (the fake Gemini API, through google-genai)."""

from __future__ import annotations

from devstack.stack import Stack
from tests.support.fake_gemini import FakeGemini, Reply, Script
from tests.support.ws import RawClient, events, reply_text


def test_gemini_calls_the_tools(
    stack: Stack, fake_gemini: FakeGemini, uid: str, cleanup_deployments: None
) -> None:
    fake_gemini.script(
        uid,
        Script(
            replies=[
                Reply(
                    chunks=["Let me look at it."],
                    function_call=("analyse_repository", {"source": "./examples/hello-flask"}),
                ),
                Reply(
                    chunks=["It is a Flask app. "],
                    function_call=(
                        "request_deployment",
                        {"source": "./examples/hello-flask", "target": "local"},
                    ),
                ),
                Reply(chunks=["Please confirm the deployment."]),
            ]
        ),
    )
    with RawClient(stack.ws_url) as client:
        client.init()
        client.send(
            {"type": "chat", "id": f"g-{uid}", "content": f"put my flask example online [[{uid}]]"}
        )
        frames = client.turn(f"g-{uid}", timeout=60)
    kinds = [f["type"] for f in events(frames)]
    assert kinds.index("analysis") < kinds.index("deployment_update")
    text = reply_text(frames, f"g-{uid}")[1]["content"]
    assert text.startswith("Let me look at it.") and text.endswith("Please confirm the deployment.")
    calls = fake_gemini.calls_for(uid)
    assert len(calls) == 3
    # The tool results went back to the model as function responses.
    last = calls[-1].body["contents"]
    responses = [p["functionResponse"] for c in last for p in c["parts"] if "functionResponse" in p]
    assert [r["name"] for r in responses] == ["analyse_repository", "request_deployment"]
    assert "hello-flask" in str(responses[0]["response"])
    assert "tools" in calls[0].body and "systemInstruction" in calls[0].body
