"""Malformed frames for the fuzz test, each with what the server must do about it.

Two kinds: frames the chat protocol must answer with one typed `error` while the socket stays
open (`Answered`), and frames the WebSocket layer must refuse by closing the socket with a close
frame of a given code (`Closing`). Made from a seeded random.Random, so a failure repeats.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass

from .raw_socket import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_TEXT,
    close_payload,
    encode_frame,
)

LIMIT = 64 * 1024
# Error codes a malformed frame may be answered with, and never `internal`.
TYPED = {"invalid_message", "not_initialized"}


@dataclass(frozen=True)
class Answered:
    """Wire bytes of one message (`frames` frames) answered by one typed error frame."""

    kind: str
    wire: bytes
    frames: int = 1


@dataclass(frozen=True)
class Closing:
    """Wire bytes that must make the server close with one of `codes` (None: any code, or
    none as long as the server waits for more: half a frame is not an error yet)."""

    kind: str
    wire: bytes
    codes: frozenset[int] | None
    frames: int = 1
    after_init: bool = False


def text(payload: str | bytes) -> bytes:
    return encode_frame(OP_TEXT, payload.encode() if isinstance(payload, str) else payload)


def _word(rng: random.Random, n: int = 8) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits + "-_", k=rng.randint(1, n)))


def _unicode(rng: random.Random, n: int = 40) -> str:
    # Any code point but the surrogates (which UTF-8 cannot carry: see lone_surrogate).
    points = [
        rng.choice((rng.randint(32, 0xD7FF), rng.randint(0xE000, 0x10FFFF))) for _ in range(n)
    ]
    return "".join(chr(p) for p in points)


def _json_scalar(rng: random.Random) -> object:
    return rng.choice([0, -1, 2**70, 3.5, "", "x", True, False, None, [], {}, [1, "a"]])


def _pad_to(obj: dict[str, object], size: int) -> str:
    """obj with an extra `pad` field (so it is refused), exactly `size` bytes of JSON."""
    base = json.dumps({**obj, "pad": ""})
    return json.dumps({**obj, "pad": "p" * (size - len(base))})


# ---------------------------------------------------------------- answered, socket stays open


def answered(rng: random.Random, *, initialized: bool) -> Answered:
    """One malformed message the chat protocol must answer with a typed error."""
    kinds = AFTER_INIT_KINDS if initialized else BEFORE_INIT_KINDS
    kind = rng.choice(kinds)
    wire, frames = _ANSWERED[kind](rng)
    return Answered(kind, wire, frames)


def _binary(rng: random.Random) -> tuple[bytes, int]:
    return encode_frame(OP_BINARY, rng.randbytes(rng.randint(0, 2000))), 1


def _not_json(rng: random.Random) -> tuple[bytes, int]:
    return text("~" + _unicode(rng, rng.randint(0, 200))), 1


def _not_an_object(rng: random.Random) -> tuple[bytes, int]:
    return text(json.dumps(_json_scalar(rng))), 1


def _missing_type(rng: random.Random) -> tuple[bytes, int]:
    return text(json.dumps({"id": _word(rng), "content": _unicode(rng, 10)})), 1


def _wrong_type_type(rng: random.Random) -> tuple[bytes, int]:
    return text(json.dumps({"type": _json_scalar(rng), "id": "x", "content": "x"})), 1


def _unknown_type(rng: random.Random) -> tuple[bytes, int]:
    return text(json.dumps({"type": rng.choice(["shout", "CHAT", "Ping", _unicode(rng, 5)])})), 1


def _wrong_fields(rng: random.Random) -> tuple[bytes, int]:
    frames: list[dict[str, object]] = [
        {"type": "chat", "id": rng.randint(0, 9), "content": "x"},
        {"type": "chat", "id": _word(rng), "content": rng.choice([7, None, [], {}, True])},
        {"type": "chat", "id": _word(rng), "content": ""},
        {"type": "chat", "id": "has space", "content": "x"},
        {"type": "chat", "id": "x" * rng.randint(65, 500), "content": "x"},
        {"type": "chat", "id": _word(rng), "content": "x", "x_" + _word(rng): 1},
        {"type": "ping", "ts": rng.choice(["soon", None, [], {}])},
        {"type": "cancel", "turn_id": rng.randint(0, 9)},
        {"type": "init", "last_seq": rng.choice([-1, 1.5, [], {}])},
        {"type": "init", "session_id": rng.choice(["short", "x y" * 10, 7, ""])},
    ]
    return text(json.dumps(rng.choice(frames))), 1


def _missing_fields(rng: random.Random) -> tuple[bytes, int]:
    frames = [
        {"type": "chat"},
        {"type": "chat", "id": _word(rng)},
        {"type": "chat", "content": "x"},
        {"type": "ping"},
        {"type": "cancel"},
    ]
    return text(json.dumps(rng.choice(frames))), 1


def _deep(rng: random.Random) -> tuple[bytes, int]:
    depth = rng.choice([100, 1000, 5000, rng.randint(1, 30000)])
    if rng.random() < 0.5:
        return text("[" * depth + "]" * depth), 1
    depth = min(depth, 10000)  # 6 bytes a level: within the frame limit
    inner = '{"a":' * depth + "1" + "}" * depth
    return text('{"type": "chat", "id": "deep", "content": ' + inner + "}"), 1


def _lone_surrogate(rng: random.Random) -> tuple[bytes, int]:
    # JSON's \u escapes can name a surrogate that no UTF-8 text can hold.
    surrogate = "\\u" + format(rng.randint(0xD800, 0xDFFF), "04x")
    field = rng.choice(["id", "content", "turn_id", "type"])
    frame = {
        "id": '{"type": "chat", "id": "a%sb", "content": "x"}',
        "content": '{"type": "chat", "id": "sur", "content": "a%sb"}',
        "turn_id": '{"type": "cancel", "turn_id": "%s"}',
        "type": '{"type": "%s"}',
    }[field]
    return text(frame % surrogate), 1


def _not_a_number(rng: random.Random) -> tuple[bytes, int]:
    value = rng.choice(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
    frame = rng.choice(
        [
            '{"type": "ping", "ts": %s}',
            '{"type": "init", "last_seq": %s}',
            '{"type": "chat", "id": "nan", "content": %s}',
        ]
    )
    return text(frame % value), 1


def _reserved_id(rng: random.Random) -> tuple[bytes, int]:
    """Before init only: after it, these are a real chat and cancel (turn documents are named
    t-{id}, so __x__ message ids are stored safely). `init` with a __x__ session id closes
    (no such session: 1008), see Closing."""
    reserved = rng.choice(RESERVED_IDS) if rng.random() < 0.5 else "__" + _word(rng) + "__"
    frame = rng.choice(
        [
            {"type": "chat", "id": reserved, "content": "hello"},
            {"type": "cancel", "turn_id": reserved},
        ]
    )
    return text(json.dumps(frame)), 1


RESERVED_IDS = ["__x__", "__reserved__", "__name__", "__.*__"]


def _around_the_limit(rng: random.Random) -> tuple[bytes, int]:
    size = rng.choice([LIMIT, LIMIT - 1, LIMIT - 2, LIMIT - rng.randint(3, 2000)])
    return text(_pad_to({"type": "chat", "id": "big", "content": "x"}, size)), 1


def _fragmented(rng: random.Random) -> tuple[bytes, int]:
    """A refused message in 2-6 fragments (pings may come between them, as RFC 6455 allows)."""
    payload = json.dumps({"type": "chat", "id": "frag", "content": _unicode(rng, 60), "x": 1})
    data = payload.encode()
    cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 5)))
    parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    wire = b""
    for index, part in enumerate(parts):
        opcode = OP_TEXT if index == 0 else OP_CONTINUATION
        wire += encode_frame(opcode, part, fin=index == len(parts) - 1)
    return wire, len(parts)


def _chat_before_init(rng: random.Random) -> tuple[bytes, int]:
    frame = rng.choice(
        [
            {"type": "chat", "id": _word(rng), "content": "hi"},
            {"type": "cancel", "turn_id": _word(rng)},
        ]
    )
    return text(json.dumps(frame)), 1


def _init_twice(rng: random.Random) -> tuple[bytes, int]:
    return text(json.dumps({"type": "init"})), 1


_ANSWERED = {
    "binary": _binary,
    "not json": _not_json,
    "not an object": _not_an_object,
    "missing type": _missing_type,
    "wrong type of type": _wrong_type_type,
    "unknown type": _unknown_type,
    "wrong fields": _wrong_fields,
    "missing fields": _missing_fields,
    "deep nesting": _deep,
    "lone surrogate": _lone_surrogate,
    "NaN and Infinity": _not_a_number,
    "__x__ ids": _reserved_id,
    "around the limit": _around_the_limit,
    "fragmented": _fragmented,
    "chat before init": _chat_before_init,
    "init twice": _init_twice,
}
ANSWERED_KINDS = list(_ANSWERED)
BEFORE_INIT_KINDS = [k for k in ANSWERED_KINDS if k != "init twice"]
# After init a well-formed chat or cancel is a real one: those kinds are before init only.
AFTER_INIT_KINDS = [k for k in ANSWERED_KINDS if k not in ("chat before init", "__x__ ids")]


# ---------------------------------------------------------------- the socket must close


def closing(rng: random.Random) -> Closing:
    kind = rng.choice(CLOSING_KINDS)
    wire, codes, frames = _CLOSING[kind](rng)
    after_init = kind in AFTER_INIT_OK and rng.random() < 0.25
    return Closing(kind, wire, codes, frames, after_init)


Codes = frozenset[int] | None


def _not_utf8(rng: random.Random) -> tuple[bytes, Codes, int]:
    data = bytearray(rng.randbytes(rng.randint(0, 300)))
    data.insert(rng.randint(0, len(data)), 0xFF)  # never valid in UTF-8
    return text(bytes(data)), frozenset({1007}), 1


def _not_utf8_fragmented(rng: random.Random) -> tuple[bytes, Codes, int]:
    first = encode_frame(OP_TEXT, b'{"type": "ping", ', fin=False)
    return first + encode_frame(OP_CONTINUATION, b'"ts": "\xc3\x28"}'), frozenset({1007}), 2


def _too_big(rng: random.Random) -> tuple[bytes, Codes, int]:
    opcode = rng.choice([OP_TEXT, OP_BINARY])
    size = rng.choice([LIMIT + 1, LIMIT + 2, LIMIT + rng.randint(3, 60000)])
    return encode_frame(opcode, b"x" * size), frozenset({1009}), 1


def _too_big_fragmented(rng: random.Random) -> tuple[bytes, Codes, int]:
    half = LIMIT // 2 + 1
    wire = encode_frame(OP_TEXT, b"y" * half, fin=False)
    wire += encode_frame(OP_CONTINUATION, b"y" * half, fin=True)
    return wire, frozenset({1009}), 2


def _reserved_bits(rng: random.Random) -> tuple[bytes, Codes, int]:
    return encode_frame(OP_TEXT, b'{"type": "ping", "ts": 1}', rsv=rng.randint(1, 7)), PROTO, 1


def _reserved_opcode(rng: random.Random) -> tuple[bytes, Codes, int]:
    opcode = rng.choice([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
    return encode_frame(opcode, rng.randbytes(rng.randint(0, 100))), PROTO, 1


def _unmasked(rng: random.Random) -> tuple[bytes, Codes, int]:
    return encode_frame(OP_TEXT, b'{"type": "ping", "ts": 1}', masked=False), PROTO, 1


def _big_control(rng: random.Random) -> tuple[bytes, Codes, int]:
    return encode_frame(OP_PING, b"p" * rng.randint(126, 5000)), PROTO, 1


def _fragmented_control(rng: random.Random) -> tuple[bytes, Codes, int]:
    return encode_frame(OP_PING, b"half", fin=False), PROTO, 1


def _orphan_continuation(rng: random.Random) -> tuple[bytes, Codes, int]:
    return encode_frame(OP_CONTINUATION, b"nothing to continue"), PROTO, 1


def _interleaved_message(rng: random.Random) -> tuple[bytes, Codes, int]:
    wire = encode_frame(OP_TEXT, b'{"type": ', fin=False)
    return wire + encode_frame(OP_TEXT, b'"ping", "ts": 1}'), PROTO, 2


def _bad_close_code(rng: random.Random) -> tuple[bytes, Codes, int]:
    code = rng.choice([0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
    return encode_frame(OP_CLOSE, close_payload(code)), PROTO, 1


def _one_byte_close(rng: random.Random) -> tuple[bytes, Codes, int]:
    return encode_frame(OP_CLOSE, b"\x03"), PROTO, 1


def _close_reason_not_utf8(rng: random.Random) -> tuple[bytes, Codes, int]:
    return encode_frame(OP_CLOSE, close_payload(1000, b"\xff\xfe bad")), frozenset({1007, 1002}), 1


def _bad_token(rng: random.Random) -> tuple[bytes, Codes, int]:
    token = rng.choice(
        [
            "garbage",
            "a.b.c",
            "eyJhbGciOiJub25lIn0." + _word(rng, 40) + ".",
            _unicode(rng, 30),
            "x" * rng.randint(1, 4000),
        ]
    )
    return text(json.dumps({"type": "init", "token": token})), POLICY, 1


def _no_token(rng: random.Random) -> tuple[bytes, Codes, int]:
    return text(json.dumps({"type": "init"})), POLICY, 1


def _reserved_session(rng: random.Random) -> tuple[bytes, Codes, int]:
    session_id = rng.choice(["__reserved__", "__session__", "__" + "x" * 20 + "__"])
    return text(json.dumps({"type": "init", "session_id": session_id})), POLICY, 1


def _wire_garbage(rng: random.Random) -> tuple[bytes, Codes, int]:
    return rng.randbytes(rng.randint(1, 400)), None, 1


PROTO = frozenset({1002})
POLICY = frozenset({1008})

_CLOSING = {
    "text not UTF-8": _not_utf8,
    "fragmented text not UTF-8": _not_utf8_fragmented,
    "over the limit": _too_big,
    "fragments over the limit": _too_big_fragmented,
    "reserved bits": _reserved_bits,
    "reserved opcode": _reserved_opcode,
    "unmasked": _unmasked,
    "control frame over 125 bytes": _big_control,
    "fragmented control frame": _fragmented_control,
    "continuation of nothing": _orphan_continuation,
    "new message inside a fragmented one": _interleaved_message,
    "invalid close code": _bad_close_code,
    "1-byte close payload": _one_byte_close,
    "close reason not UTF-8": _close_reason_not_utf8,
    "bad token": _bad_token,
    "no token": _no_token,
    "init with a __x__ session id": _reserved_session,
    "random bytes on the wire": _wire_garbage,
}
CLOSING_KINDS = list(_CLOSING)
# Closings that mean the same after init (the rest are about init itself, or need no session).
AFTER_INIT_OK = {"text not UTF-8", "over the limit", "fragments over the limit", "unmasked"}
