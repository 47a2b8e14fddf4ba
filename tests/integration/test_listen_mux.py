"""The edge's shared Firestore listener: many targets on one stream, surviving a broken stream."""

from __future__ import annotations

import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from google.cloud import firestore

from devstack.stack import Emulator
from edge.listen_mux import ListenMux
from tests.support.firestore_emulator import own_firestore, wait_until

PROJECT = "mux-test"


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with own_firestore(tmp_path, monkeypatch) as emulator:
        yield emulator


def test_many_targets_share_one_stream_and_survive_a_broken_stream(emulator: Emulator) -> None:
    db = firestore.Client(project=PROJECT)
    mux = ListenMux(lambda: db, backoff_s=(0.1, 1.0))
    seen: dict[str, set[int]] = defaultdict(set)
    lock = threading.Lock()

    def collector(session: str) -> Callable[[str, dict[str, object]], None]:
        def on_document(doc_id: str, data: dict[str, object]) -> None:
            with lock:
                seen[session].add(int(str(data["seq"])))

        return on_document

    sessions = [f"s{n}" for n in range(20)]
    subscriptions = []
    for session in sessions:
        events = db.collection("sessions").document(session).collection("events")
        query = events.order_by("seq", direction=firestore.Query.DESCENDING).limit(10)
        subscriptions.append(mux.watch(query, collector(session)))

    def write(seq: int) -> None:
        for session in sessions:
            ref = db.collection("sessions").document(session).collection("events")
            ref.document(f"{seq:012d}").set({"seq": seq})

    write(1)
    wait_until(lambda: all(1 in seen[s] for s in sessions))
    assert mux.targets == 20

    # The emulator dies and comes back on the same port (empty, as emulators do).
    emulator.stop()
    time.sleep(0.5)
    emulator.process.start()
    emulator.wait_ready()
    write(2)
    # gRPC reconnects its channel with a backoff of its own (1 s, x1.6 per attempt) after the
    # seconds the emulator was down: the events come once it is through.
    wait_until(lambda: all(2 in seen[s] for s in sessions), timeout=90)
    assert mux.reconnects >= 1

    # An unsubscribed target hears nothing more; the others still do.
    subscriptions[0].unsubscribe()
    write(3)
    wait_until(lambda: all(3 in seen[s] for s in sessions[1:]))
    time.sleep(0.5)
    assert 3 not in seen[sessions[0]]
    assert mux.targets == 19
    mux.close()


def test_a_document_target_sends_the_document_now_and_on_each_change(emulator: Emulator) -> None:
    """What the edge listens to: the session document, not a query on its events."""
    db = firestore.Client(project=PROJECT)
    mux = ListenMux(lambda: db, backoff_s=(0.1, 1.0))
    seen: dict[str, list[int]] = defaultdict(list)
    lock = threading.Lock()
    docs = [db.collection("sessions").document(f"doc{n}") for n in range(5)]
    docs[0].set({"last_seq": 7})

    def collector(doc_id: str, data: dict[str, object]) -> None:
        with lock:
            seen[doc_id].append(int(str(data["last_seq"])))

    subscriptions = [mux.watch_document(doc, collector) for doc in docs]
    wait_until(lambda: seen["doc0"] == [7])  # the document as it is when watched
    for doc in docs:
        doc.set({"last_seq": 8}, merge=True)
    wait_until(lambda: all(seen[d.id][-1:] == [8] for d in docs))
    assert seen["doc1"] == [8], "a document that did not exist is not reported until it does"
    subscriptions[1].unsubscribe()
    docs[1].set({"last_seq": 9})
    docs[2].set({"last_seq": 9})
    wait_until(lambda: seen["doc2"][-1] == 9)
    time.sleep(0.5)
    assert seen["doc1"] == [8]
    mux.close()


def test_a_quiet_stream_is_probed_not_reopened(emulator: Emulator) -> None:
    db = firestore.Client(project=PROJECT)
    mux = ListenMux(lambda: db, idle_timeout_s=0.5, probe_timeout_s=3.0)
    seen: list[int] = []
    events = db.collection("sessions").document("quiet").collection("events")
    mux.watch(
        events.order_by("seq").limit(10), lambda _id, data: seen.append(int(str(data["seq"])))
    )
    events.document("000000000001").set({"seq": 1})
    wait_until(lambda: 1 in seen)
    # Nothing changes for a while: the emulator sends nothing, the probes are answered.
    wait_until(lambda: mux.probes >= 4)
    # (The emulator now and then sends a frame it cannot encode: that break is not ours.)
    assert mux.watchdog_reconnects == 0
    events.document("000000000002").set({"seq": 2})
    wait_until(lambda: 2 in seen)
    mux.close()


def test_a_stalled_backend_costs_at_most_the_probe_timeout_after_it_is_back(
    emulator: Emulator,
) -> None:
    """The emulator frozen (SIGSTOP to its whole process group, the JVM included) for 20 s."""
    db = firestore.Client(project=PROJECT)
    probe_timeout = 3.0
    mux = ListenMux(lambda: db, idle_timeout_s=2.0, probe_timeout_s=probe_timeout)
    seen: set[int] = set()
    events = db.collection("sessions").document("stall").collection("events")
    query = events.order_by("seq", direction=firestore.Query.DESCENDING).limit(10)
    mux.watch(query, lambda _id, data: seen.add(int(str(data["seq"]))))
    events.document("000000000001").set({"seq": 1})
    wait_until(lambda: 1 in seen)

    emulator.process.signal(signal.SIGSTOP)
    try:
        time.sleep(20)
    finally:
        emulator.process.signal(signal.SIGCONT)
    resumed = time.monotonic()
    events.document("000000000002").set({"seq": 2})
    wait_until(lambda: 2 in seen, timeout=30)
    # The stream was cut while the backend was frozen; the one open at the resume answers, or
    # is cut within the probe timeout and opened again at the first backoff step.
    assert time.monotonic() - resumed < probe_timeout + 3.0
    assert mux.watchdog_reconnects >= 1
    mux.close()
