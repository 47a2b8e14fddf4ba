"""The fuzz test's frames are what they claim: well framed, within the limit, and refused by the
protocol (so the fuzz test never sends a real chat by accident)."""

from __future__ import annotations

import random
import struct

import pytest

from deploychat.errors import ProtocolError
from deploychat.protocol import ChatFrame, InitFrame, parse_client_frame
from tests.support.fuzz_frames import LIMIT, answered, closing
from tests.support.raw_socket import OP_BINARY, OP_CONTINUATION, OP_TEXT, encode_frame, mask


def decode(wire: bytes) -> list[tuple[int, bool, bytes]]:
    """(opcode, fin, unmasked payload) of each client frame on the wire."""
    frames = []
    i = 0
    while i < len(wire):
        first, second = wire[i], wire[i + 1]
        i += 2
        n = second & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", wire[i : i + 2])
            i += 2
        elif n == 127:
            (n,) = struct.unpack("!Q", wire[i : i + 8])
            i += 8
        assert second & 0x80, "client frames are masked"
        key = wire[i : i + 4]
        i += 4
        frames.append((first & 0xF, bool(first & 0x80), mask(wire[i : i + n], key)))
        i += n
    return frames


def test_mask_round_trips() -> None:
    payload = bytes(range(256)) * 300
    assert mask(mask(payload, b"abcd"), b"abcd") == payload
    assert decode(encode_frame(OP_TEXT, payload)) == [(OP_TEXT, True, payload)]


@pytest.mark.parametrize("initialized", [False, True])
def test_answered_frames_are_refused_by_the_protocol(initialized: bool) -> None:
    rng = random.Random(7)
    for _ in range(1500):
        case = answered(rng, initialized=initialized)
        frames = decode(case.wire)
        assert len(frames) == case.frames
        assert frames[0][0] in (OP_TEXT, OP_BINARY)
        assert all(op == OP_CONTINUATION for op, _, _ in frames[1:])
        assert [fin for _, fin, _ in frames] == [False] * (len(frames) - 1) + [True]
        data = b"".join(payload for _, _, payload in frames)
        assert len(data) <= LIMIT, case.kind
        if frames[0][0] == OP_BINARY:
            continue
        try:
            frame = parse_client_frame(data.decode())
        except ProtocolError:
            continue
        # Well-formed frames are only those the state refuses: chat/cancel before init, and
        # a second init.
        if initialized:
            assert isinstance(frame, InitFrame) and case.kind == "init twice", case
        else:
            assert not isinstance(frame, InitFrame), case
            assert case.kind in ("chat before init", "__x__ ids"), case
            assert not isinstance(frame, ChatFrame) or frame.content


def test_closing_cases_say_what_closes_them() -> None:
    rng = random.Random(8)
    kinds = set()
    for _ in range(600):
        case = closing(rng)
        kinds.add(case.kind)
        assert case.wire
        assert case.codes is None or case.codes <= {1002, 1007, 1008, 1009}
    assert len(kinds) >= 15
