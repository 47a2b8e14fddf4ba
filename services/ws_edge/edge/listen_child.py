"""The edge worker's listener process: the shared Firestore Listen stream, off the worker's loop.

`python -m edge.listen_child`, started by listen_process.ListenProcess. Under gevent, gRPC
handles every event of a call (a send completing, each response) with a poll on the worker's
thread pool whose answer reaches the stream only at the event loop's next turn, and a target
takes about five events. With thousands of sockets on the loop, a turn is long, so targets were
added at about one a second while sockets opened, and the backlog's answers then cost the
"idle" worker a third of a core (README, *Performance*). Here gRPC runs on native threads, with
no socket greenlets to wait behind, and what it hears goes back to the worker in batches.

Reads from stdin: first the settings (a dict), then batches of `("add", id, path)` and
`("remove", id)`. Writes batches of `("doc", id, doc_id, data)` and `("stats", reconnects,
watchdog reconnects, probes)` to its stdout, which is kept for them alone: fd 1 is pointed at
stderr, so no log line or stray print can corrupt a batch. Exits when stdin ends, which is also
how it learns that its worker has died.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading
from typing import IO, Any

from google.cloud import firestore

from deploychat.logging_setup import setup_logging
from deploychat.settings import CommonSettings

from .listen_mux import ListenMux, Subscription
from .listen_pipe import MAX_BATCH, read_batch, write_batch

log = logging.getLogger(__name__)

STATS_EVERY_S = 1.0


class Outbox:
    """Everything heard goes out in batches: as many items as have come while the last went."""

    def __init__(self, stream: IO[bytes], mux: ListenMux) -> None:
        self._stream = stream
        self._mux = mux
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stats: tuple[int, int, int] = (0, 0, 0)
        self._thread = threading.Thread(target=self._run, daemon=True, name="listen-outbox")
        self._thread.start()

    def put(self, item: Any) -> None:
        self._items.put(item)

    def _run(self) -> None:
        try:
            while True:
                batch: list[Any] = []
                try:
                    batch.append(self._items.get(timeout=STATS_EVERY_S))
                    while len(batch) < MAX_BATCH:
                        batch.append(self._items.get_nowait())
                except queue.Empty:
                    pass
                stats = (self._mux.reconnects, self._mux.watchdog_reconnects, self._mux.probes)
                if stats != self._stats:
                    self._stats = stats
                    batch.append(("stats", *stats))
                if batch:
                    write_batch(self._stream, batch)
        except (BrokenPipeError, OSError):
            os._exit(0)  # the worker has gone: nobody to listen for


def main() -> None:
    # A SIGTERM to the whole group (a stack stopping) is for the worker: this process ends
    # when its worker has gone (stdin ends), and not before, so the worker never sees its
    # listener die under it while it drains.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    commands = sys.stdin.buffer
    # The batches get fd 1 to themselves; print() and every log handler write to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    first = read_batch(commands)
    if not first:
        return
    config: dict[str, Any] = first[0]
    setup_logging(
        CommonSettings.model_construct(
            project_id=config["project_id"],
            log_format=config["log_format"],
            log_level=config["log_level"],
            running_on=config["running_on"],
        )
    )
    db = firestore.Client(project=config["project_id"], database=config["firestore_database"])
    mux = ListenMux(
        lambda: db,
        idle_timeout_s=config["idle_timeout_s"],
        probe_timeout_s=config["probe_timeout_s"],
    )
    outbox = Outbox(out, mux)
    subscriptions: dict[int, Subscription] = {}

    def forward(target_id: int) -> Any:
        def on_document(doc_id: str, data: dict[str, Any]) -> None:
            outbox.put(("doc", target_id, doc_id, data))

        return on_document

    while (batch := read_batch(commands)) is not None:
        for command in batch:
            if command[0] == "add":
                _, target_id, path = command
                subscriptions[target_id] = mux.watch_document(db.document(path), forward(target_id))
            elif command[0] == "remove":
                subscription = subscriptions.pop(command[1], None)
                if subscription is not None:
                    subscription.unsubscribe()
    mux.close()


if __name__ == "__main__":
    main()
