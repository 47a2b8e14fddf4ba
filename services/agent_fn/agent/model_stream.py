"""A model stream read with a watchdog: a stall or the turn's deadline cuts it.

The HTTP client's timeout applies to each read, so a stream that trickles, or one that never
starts within the function's time, would hold a turn for as long as the client allows. The
stream is read on a thread of its own instead, and the caller waits for each piece at most
`first_timeout` (for the first) or `stall_timeout` (after), and never past `deadline`. A cut
stream's thread ends by itself at its next piece or at the client's own timeout.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator


class StreamStalled(Exception):
    """No piece came within the wait; `first` tells whether any piece had come."""

    def __init__(self, waited_s: float, first: bool) -> None:
        what = "first piece" if first else "next piece"
        super().__init__(f"no {what} of the model's stream within {waited_s:g} s")
        self.first = first


class DeadlinePassed(Exception):
    """The turn's deadline came while the stream was still going."""


_END = object()


def watched[T](
    open_stream: Callable[[], Iterable[T]],
    *,
    first_timeout: float,
    stall_timeout: float,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[T]:
    """The pieces of `open_stream()`, read on a thread; raises what the stream raises."""
    pieces: queue.Queue[tuple[object, BaseException | None]] = queue.Queue()
    stop = threading.Event()

    def read() -> None:
        try:
            for piece in open_stream():
                if stop.is_set():
                    return  # leaving the loop closes the stream, and its connection
                pieces.put((piece, None))
            pieces.put((_END, None))
        except BaseException as exc:  # handed to the caller, in its thread
            pieces.put((_END, exc))

    # The thread carries the caller's context, so its spans join the turn's trace.
    context = contextvars.copy_context()
    reader = threading.Thread(target=context.run, args=(read,), name="model-stream", daemon=True)
    reader.start()
    first = True
    try:
        while True:
            wait = first_timeout if first else stall_timeout
            remaining = deadline - clock()
            if remaining <= 0:
                raise DeadlinePassed()
            try:
                piece, error = pieces.get(timeout=min(wait, remaining))
            except queue.Empty:
                if remaining <= wait:
                    raise DeadlinePassed() from None
                raise StreamStalled(wait, first) from None
            if error is not None:
                raise error
            if piece is _END:
                return
            first = False
            yield piece  # type: ignore[misc]
    finally:
        stop.set()
