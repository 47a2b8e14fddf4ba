"""The edge worker's side of its listener process: ListenMux's calls, served by a child.

The shared Listen stream (listen_mux) runs in a process of its own (listen_child), where gRPC
has native threads and no socket greenlets to wait behind; see that module for why. Here a
reader (a greenlet under gunicorn's gevent worker) takes its batches and calls each target's
callback on the worker's own loop, where the sockets' feeds live; a writer sends the targets
added and removed, batched the same way.

A child that dies (or is killed) is started again with backoff and given every target afresh,
exactly as the mux does for a broken stream: the first snapshot of each carries the session's
`last_seq`, and the feeds skip what they hold and read by seq what they missed.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from typing import IO, Any

from google.cloud import firestore

from .listen_mux import DocumentCallback, Subscription
from .listen_pipe import MAX_BATCH, read_batch, write_batch
from .settings import EdgeSettings

log = logging.getLogger(__name__)


class ListenProcess:
    def __init__(self, settings: EdgeSettings, *, backoff_s: tuple[float, float] = (0.25, 10.0)):
        self._settings = settings
        self._backoff = backoff_s
        self._targets: dict[int, tuple[str, DocumentCallback]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._outgoing: queue.SimpleQueue[Any] | None = None
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False
        # The child's own counts, plus those of the children before it.
        self._stats = (0, 0, 0)
        self._earlier = (0, 0, 0)
        self.restarts = 0

    # ---------------------------------------------------------------- public

    def watch_document(
        self, document: firestore.DocumentReference, on_document: DocumentCallback
    ) -> Subscription:
        """Call `on_document(doc_id, data)` with the document as it is now, and on each change
        (ListenMux.watch_document), from the worker's loop."""
        target_id = next(self._ids)
        with self._lock:
            self._targets[target_id] = (document.path, on_document)
            if self._outgoing is not None:
                self._outgoing.put(("add", target_id, document.path))
            self._start()
        return Subscription(self, target_id)

    def start(self) -> None:
        """Start the child now (it takes a second or two to import gRPC and connect), rather
        than with the first session."""
        with self._lock:
            self._start()

    def unwatch(self, target_id: int) -> None:
        with self._lock:
            if self._targets.pop(target_id, None) is not None and self._outgoing is not None:
                self._outgoing.put(("remove", target_id))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._outgoing is not None:
                self._outgoing.put(None)
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()  # it ignores SIGTERM (listen_child)

    @property
    def targets(self) -> int:
        return len(self._targets)

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None else None

    @property
    def reconnects(self) -> int:
        return self._earlier[0] + self._stats[0] + self.restarts

    @property
    def watchdog_reconnects(self) -> int:
        return self._earlier[1] + self._stats[1]

    @property
    def probes(self) -> int:
        return self._earlier[2] + self._stats[2]

    # ---------------------------------------------------------------- the child

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="listen-process")
            self._thread.start()

    def _run(self) -> None:
        delay = self._backoff[0]
        while not self._closed:
            started = time.monotonic()
            try:
                self._serve()
            except Exception:
                log.exception("the listener process failed")
            if self._closed:
                return
            if time.monotonic() - started > 30:
                delay = self._backoff[0]
            log.warning("the listener process ended: starting another in %.2f s", delay)
            time.sleep(delay)
            delay = min(delay * 2, self._backoff[1])
            self.restarts += 1
            self._earlier = tuple(a + b for a, b in zip(self._earlier, self._stats, strict=True))  # type: ignore[assignment]
            self._stats = (0, 0, 0)

    def _config(self) -> dict[str, Any]:
        s = self._settings
        return {
            "project_id": s.project_id,
            "firestore_database": s.firestore_database,
            "idle_timeout_s": s.listen_idle_timeout_s,
            "probe_timeout_s": s.listen_probe_timeout_s,
            "log_format": s.log_format,
            "log_level": s.log_level,
            "running_on": s.running_on,
        }

    def _serve(self) -> None:
        # The child imports what this worker imports, from the same places.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge.listen_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert proc.stdin is not None and proc.stdout is not None
        outgoing: queue.SimpleQueue[Any] = queue.SimpleQueue()
        with self._lock:
            self._proc = proc
            outgoing.put([self._config()])
            for target_id, (path, _) in self._targets.items():
                outgoing.put(("add", target_id, path))
            self._outgoing = outgoing
        writer = threading.Thread(
            target=self._write, args=(proc.stdin, outgoing), daemon=True, name="listen-writer"
        )
        writer.start()
        try:
            while (batch := read_batch(proc.stdout)) is not None:
                self._dispatch(batch)
                # A long batch is handled without a pause; then the sockets get their turn.
                time.sleep(0)
        finally:
            with self._lock:
                if self._outgoing is outgoing:
                    self._outgoing = None
            outgoing.put(None)
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    @staticmethod
    def _write(stream: IO[bytes], outgoing: queue.SimpleQueue[Any]) -> None:
        try:
            first = outgoing.get()
            write_batch(stream, first)  # the settings, alone
            while (item := outgoing.get()) is not None:
                batch = [item]
                while len(batch) < MAX_BATCH:
                    try:
                        more = outgoing.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        write_batch(stream, batch)
                        return
                    batch.append(more)
                write_batch(stream, batch)
        except OSError:
            pass  # the child has gone; the reader sees its end and starts another
        finally:
            with contextlib.suppress(OSError):
                stream.close()

    def _dispatch(self, batch: list[Any]) -> None:
        for item in batch:
            if item[0] == "doc":
                _, target_id, doc_id, data = item
                target = self._targets.get(target_id)
                if target is None:
                    continue  # removed while the change was on its way
                try:
                    target[1](doc_id, data)
                except Exception:
                    log.exception("listener callback for target %d failed", target_id)
            elif item[0] == "stats":
                self._stats = (item[1], item[2], item[3])
