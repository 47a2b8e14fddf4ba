from __future__ import annotations

import json

import pytest

from deploychat.errors import ProtocolError
from deploychat.protocol import (
    AckFrame,
    ChatEvent,
    ChatFrame,
    ConnectedFrame,
    ErrorEvent,
    ErrorFrame,
    InitFrame,
    dump_frame,
    parse_client_frame,
    parse_server_frame,
)


def test_parses_every_client_frame() -> None:
    assert parse_client_frame('{"type":"init"}') == InitFrame(type="init")
    init = parse_client_frame('{"type":"init","session_id":"abcdefgh","last_seq":3,"token":"t"}')
    assert isinstance(init, InitFrame) and init.last_seq == 3
    chat = parse_client_frame('{"type":"chat","id":"a_B-1","content":"hi"}')
    assert chat == ChatFrame(type="chat", id="a_B-1", content="hi")
    assert parse_client_frame('{"type":"ping","ts":1}').type == "ping"
    assert parse_client_frame('{"type":"cancel","turn_id":"x"}').type == "cancel"


@pytest.mark.parametrize(
    ("raw", "message", "ref"),
    [
        (b"{}", "binary", None),
        ("{", "not valid JSON", None),
        ("3", "JSON object", None),
        ('{"id":"a"}', "no string field 'type'", "a"),
        ('{"type":"nope"}', "unknown frame type 'nope'", None),
        ('{"type":"chat","id":"a b","content":"x"}', "chat: id:", "a b"),
        ('{"type":"chat","id":"ok","content":"x","more":1}', "chat: more: Extra inputs", "ok"),
        ('{"type":"init","session_id":"' + "s" * 129 + '"}', "init: session_id", None),
        ('{"type":"init","last_seq":-2}', "init: last_seq", None),
        ('{"type":"ping","ts":null}', "ping: ts", None),
    ],
)
def test_bad_frames_become_typed_errors(raw: str | bytes, message: str, ref: str | None) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_client_frame(raw)
    assert caught.value.code == "invalid_message"
    assert message in caught.value.message
    assert caught.value.ref == ref


def test_server_frames_ignore_unknown_fields_for_older_clients() -> None:
    frame = parse_server_frame('{"type":"ack","id":"m1","new_field":true}')
    assert frame == AckFrame(id="m1")
    event = parse_server_frame(
        '{"type":"chat","seq":4,"turn_id":"t","message_id":"t","role":"user",'
        '"content":"x","final":true,"mood":"happy"}'
    )
    assert isinstance(event, ChatEvent) and event.seq == 4


def test_error_frame_and_error_event_are_told_apart_by_seq() -> None:
    unstored = parse_server_frame('{"type":"error","code":"internal","message":"m"}')
    stored = parse_server_frame(
        '{"type":"error","seq":2,"turn_id":"t","code":"agent_failed","message":"m","retryable":false}'
    )
    assert isinstance(unstored, ErrorFrame) and isinstance(stored, ErrorEvent)


def test_dump_leaves_out_absent_optionals() -> None:
    assert json.loads(dump_frame(ErrorFrame(code="internal", message="m"))) == {
        "type": "error",
        "code": "internal",
        "message": "m",
    }
    connected = json.loads(dump_frame(ConnectedFrame(session_id="s", last_seq=0, resumed=False)))
    assert connected == {
        "type": "connected",
        "session_id": "s",
        "last_seq": 0,
        "protocol": 1,
        "resumed": False,
    }


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 1000 + "]" * 1000,
        '{"a":' * 500 + "1" + "}" * 500,
        '{"type": "chat", "id": "a\\ud800", "content": "x"}',
        '{"type": "chat", "id": "a", "content": "\\udfff"}',
        '{"type": "ping", "ts": NaN}',
        '{"type": "ping", "ts": -Infinity}',
        '{"type": "ping", "ts": 1e400}',
        "[]",
        '"init"',
        "null",
        "",
    ],
)
def test_hostile_frames_are_typed_invalid_messages(raw: str) -> None:
    from deploychat.errors import ProtocolError
    from deploychat.protocol import parse_client_frame

    with pytest.raises(ProtocolError) as refused:
        parse_client_frame(raw)
    assert refused.value.code == "invalid_message"


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    from deploychat.protocol import parse_client_frame

    frame = parse_client_frame('{"type": "chat", "id": "a", "content": "' + "[{" * 500 + '"}')
    assert frame.type == "chat"


def test_reserved_session_ids_are_recognised() -> None:
    from deploychat.protocol import is_reserved_id

    assert is_reserved_id("__reserved__") and not is_reserved_id("__not_reserved")
