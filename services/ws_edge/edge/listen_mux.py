"""One Firestore Listen stream per process, carrying one target per watched session.

The client library's `on_snapshot` opens a gRPC stream per listener, and gRPC carries at most
100 concurrent streams on a connection to Google's front ends: an edge holding more sessions
than that would stall (googleapis/google-cloud-java#3514). A stream also costs tens of KB and a
thread. The Listen RPC itself takes many targets on one stream, as the mobile and web SDKs use
it; this module does the same. On a broken stream it reconnects with backoff and adds every
target again afresh: the server sends each target's window again, and the sessions' feeds skip
what they already hold. No resume tokens: a token from before a failover (or an emulator's
restart) can silently lose changes, and correctness never rests on the listener anyway (each
socket's cursor and the catch-up reads by seq do).

A stream can also go silent without breaking: a paused or wedged backend, a connection a NAT
dropped without a reset, or the client library's known silent stalls (python-firestore #18).
Neither the emulator nor Firestore promises a periodic heartbeat on an idle stream (the emulator,
measured, sends nothing at all), so silence alone proves nothing. The watchdog asks instead: a
stream that has said nothing for `idle_timeout_s` gets a probe, a target on a document that does
not exist, which the server must answer with ADD and CURRENT. No answer within
`probe_timeout_s` (nor to a fresh stream's own targets) and the stream is cancelled and opened
again, so a stall costs at most idle + probe timeout, and a new stream opened during an outage
at most the probe timeout after the backend is back. A probe costs one read per quiet period.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.types import ListenRequest, Target

log = logging.getLogger(__name__)

DocumentCallback = Callable[[str, dict[str, Any]], None]
# Whether a document (by id) is already known to the watcher: then it is not decoded again.
KnownDocument = Callable[[str], bool]

# Probe targets get ids of their own, far above the watched ones.
_PROBE_IDS_FROM = 1 << 30
# A document no one writes: a probe on it answers ADD and CURRENT, and never a change.
_PROBE_COLLECTION = "_listen_probes"


@dataclass
class _Target:
    target_id: int
    # Either a query (its parent's path and StructuredQuery proto) or one document's path.
    parent: str | None
    query: Any
    document: str | None
    on_document: DocumentCallback
    known: KnownDocument | None = None


class ListenMux:
    def __init__(
        self,
        db: Callable[[], firestore.Client],
        *,
        backoff_s: tuple[float, float] = (0.25, 10.0),
        idle_timeout_s: float = 10.0,
        probe_timeout_s: float = 5.0,
    ) -> None:
        self._db_provider = db
        self._db: firestore.Client | None = None
        self._targets: dict[int, _Target] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._requests: queue.SimpleQueue[ListenRequest | None] | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._backoff = backoff_s
        self._idle_timeout = idle_timeout_s
        self._probe_timeout = probe_timeout_s
        self._probe_ids = itertools.count(_PROBE_IDS_FROM)
        # The stream being read (to cancel it), when it last said anything, the probe waiting.
        self._call: Any = None
        self._heard = 0.0
        self._opened = 0.0
        self._probe_sent: float | None = None
        self._watchdog: threading.Thread | None = None
        self._cut = False  # the watchdog cancelled the stream (a stall, not an error)
        self._cancelled: Any = None  # the call it cancelled: never cut twice
        self.reconnects = 0
        self.watchdog_reconnects = 0
        self.probes = 0

    # ---------------------------------------------------------------- public

    def watch(
        self,
        query: firestore.Query,
        on_document: DocumentCallback,
        known: KnownDocument | None = None,
    ) -> Subscription:
        """Call `on_document(doc_id, data)` for each document added to or changed in `query`.

        A listener may send a document again unchanged (the emulator re-sends a query's whole
        result set on every change); with `known`, the documents it says are known already
        are skipped before they are decoded. Only for documents that never change.
        """
        parent, _ = query._parent._parent_info()
        target = _Target(next(self._ids), parent, query._to_protobuf(), None, on_document, known)
        return self._add(target)

    def watch_document(
        self, document: firestore.DocumentReference, on_document: DocumentCallback
    ) -> Subscription:
        """Call `on_document(doc_id, data)` with the document as it is now, and on each change.

        A document target costs the server a lookup by name per write, where a query target
        may cost a scan (the emulator re-runs the query over the whole database: measured).
        Changes that follow each other quickly may arrive as one, the latest.
        """
        target = _Target(next(self._ids), None, None, document._document_path, on_document)
        return self._add(target)

    def _add(self, target: _Target) -> Subscription:
        with self._lock:
            self._targets[target.target_id] = target
            if self._requests is not None:
                self._requests.put(self._add_request(target))
            self._start()
        return Subscription(self, target.target_id)

    def unwatch(self, target_id: int) -> None:
        with self._lock:
            if self._targets.pop(target_id, None) is not None and self._requests is not None:
                self._requests.put(ListenRequest(database=self._database, remove_target=target_id))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._requests is not None:
                self._requests.put(None)
            call = self._call
        if call is not None:
            call.cancel()

    @property
    def targets(self) -> int:
        return len(self._targets)

    # ---------------------------------------------------------------- the stream

    @property
    def _database(self) -> str:
        assert self._db is not None
        database: str = self._db._database_string
        return database

    def _add_request(self, target: _Target) -> ListenRequest:
        if target.document is not None:
            spec = Target(
                documents=Target.DocumentsTarget(documents=[target.document]),
                target_id=target.target_id,
            )
        else:
            spec = Target(
                query=Target.QueryTarget(parent=target.parent, structured_query=target.query),
                target_id=target.target_id,
            )
        return ListenRequest(database=self._database, add_target=spec)

    def _start(self) -> None:
        if self._thread is None:
            self._db = self._db_provider()
            self._thread = threading.Thread(target=self._run, daemon=True, name="listen-mux")
            self._thread.start()
            self._watchdog = threading.Thread(
                target=self._watch_forever, daemon=True, name="listen-watchdog"
            )
            self._watchdog.start()

    def _run(self) -> None:
        delay = self._backoff[0]
        while not self._closed:
            started = time.monotonic()
            self._cut = False
            try:
                self._stream()
            except Exception as exc:
                if not self._cut:
                    log.warning("Firestore listen stream broke: %s", exc)
            if self._closed:
                return
            # A stream that lived a while was healthy, and one the watchdog cut was a stall,
            # not an error answer: start the backoff again.
            if time.monotonic() - started > 30 or self._cut:
                delay = self._backoff[0]
            time.sleep(delay)
            delay = min(delay * 2, self._backoff[1])
            self.reconnects += 1

    def _stream(self) -> None:
        assert self._db is not None
        requests: queue.SimpleQueue[ListenRequest | None] = queue.SimpleQueue()
        with self._lock:
            self._requests = requests
            for target in self._targets.values():
                requests.put(self._add_request(target))

        def outgoing() -> Iterator[ListenRequest]:
            while (request := requests.get()) is not None:
                yield request

        listen = self._db._firestore_api._transport.listen
        responses = listen(outgoing(), metadata=self._db._rpc_metadata)
        with self._lock:
            self._call = responses
            self._opened = self._heard = time.monotonic()
            self._probe_sent = None
        try:
            for response in responses:
                self._heard = time.monotonic()
                self._on_response(response)
        finally:
            with self._lock:
                self._call = None
            requests.put(None)
            responses.cancel()

    # ---------------------------------------------------------------- the watchdog

    def _watch_forever(self) -> None:
        tick = max(0.05, min(1.0, self._probe_timeout / 4, self._idle_timeout / 4))
        while not self._closed:
            time.sleep(tick)
            try:
                self._check(time.monotonic())
            except Exception:
                log.exception("listen watchdog failed")

    def _check(self, now: float) -> None:
        with self._lock:
            call, requests = self._call, self._requests
            if call is None or requests is None or not self._targets:
                return
            if call is self._cancelled:
                return  # cut already; the reader reconnects once the call has unwound
            # A fresh stream has asked for its targets: the answer is due like a probe's.
            asked = self._probe_sent if self._probe_sent is not None else self._opened
            waiting = self._probe_sent is not None or self._heard <= self._opened
            if waiting and self._heard <= asked and now - asked > self._probe_timeout:
                self._cut = True
                self.watchdog_reconnects += 1
                log.warning(
                    "Firestore listen stream silent for %.1f s with %d targets: reconnecting",
                    now - self._heard,
                    len(self._targets),
                )
                self._cancelled = call
                call.cancel()
                return
            if self._probe_sent is not None and self._heard > self._probe_sent:
                self._probe_sent = None  # answered (by the probe or by anything else)
            if self._probe_sent is None and now - self._heard > self._idle_timeout:
                self._probe_sent = now
                self.probes += 1
                requests.put(self._probe_request())

    def _probe_request(self) -> ListenRequest:
        name = f"{self._database}/documents/{_PROBE_COLLECTION}/{uuid.uuid4().hex}"
        return ListenRequest(
            database=self._database,
            add_target=Target(
                documents=Target.DocumentsTarget(documents=[name]),
                target_id=next(self._probe_ids),
            ),
        )

    def _on_response(self, response: Any) -> None:
        pb = response._pb
        which = pb.WhichOneof("response_type")
        if which == "document_change":
            change = pb.document_change
            doc_id = change.document.name.rsplit("/", 1)[-1]
            targets = [self._targets.get(t) for t in change.target_ids]
            live = [t for t in targets if t is not None and not (t.known and t.known(doc_id))]
            if not live:
                return
            document = response.document_change.document
            data: dict[str, Any] = _helpers.decode_dict(document.fields, self._db)  # type: ignore[assignment]
            for target in live:
                try:
                    target.on_document(doc_id, data)
                except Exception:
                    log.exception("listener callback for target %d failed", target.target_id)
        elif which == "target_change":
            change = pb.target_change
            probes = [t for t in change.target_ids if t >= _PROBE_IDS_FROM]
            if probes and change.target_change_type == change.CURRENT:
                # Answered: it only had to prove the stream alive.
                with self._lock:
                    if self._requests is not None:
                        for target_id in probes:
                            self._requests.put(
                                ListenRequest(database=self._database, remove_target=target_id)
                            )
                return
            # Resume tokens are not kept (see the module's docstring): a token change that
            # names every target costs nothing, with 10 targets or 10,000.
            if change.target_change_type == change.REMOVE and change.cause.code:
                # The server dropped a target (an error on its side): listen to it again.
                log.warning("listen target removed: %s", change.cause.message)
                with self._lock:
                    for target_id in change.target_ids:
                        dropped = self._targets.get(target_id)
                        if dropped is not None and self._requests is not None:
                            self._requests.put(self._add_request(dropped))
        # document_delete / document_remove: events leaving a bounded window; nothing to do.


class Unwatch(Protocol):
    def unwatch(self, target_id: int) -> None: ...


class Subscription:
    """One target of a listener (this mux, or the worker's listen_process)."""

    def __init__(self, mux: Unwatch, target_id: int) -> None:
        self._mux = mux
        self.target_id = target_id

    def unsubscribe(self) -> None:
        self._mux.unwatch(self.target_id)
