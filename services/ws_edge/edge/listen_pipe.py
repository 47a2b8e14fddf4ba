"""The framing between an edge worker and its listener process (listen_process, listen_child).

Each message is a batch: a 4-byte big-endian length, then a pickled list. Pickle, because both
ends are this package on one machine, started by the worker itself (never a peer on a network),
and the listener's documents hold Firestore's decoded values (timestamps, bytes) that JSON would
not carry. A batch of many items costs one write, one read and one wake-up of the worker's loop.
"""

from __future__ import annotations

import pickle
import struct
from typing import IO, Any

_LENGTH = struct.Struct(">I")
# A batch is cut once it holds this many items: the reader's pause, not a limit on the stream.
MAX_BATCH = 512


def write_batch(stream: IO[bytes], items: list[Any]) -> None:
    payload = pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(payload)) + payload)
    stream.flush()


def read_batch(stream: IO[bytes]) -> list[Any] | None:
    """The next batch, or None at the end of the stream (the other side has gone)."""
    head = _read_exactly(stream, _LENGTH.size)
    if head is None:
        return None
    (length,) = _LENGTH.unpack(head)
    payload = _read_exactly(stream, length)
    if payload is None:
        return None
    items = pickle.loads(payload)
    if not isinstance(items, list):
        raise ValueError("a listener batch is not a list")
    return items


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
