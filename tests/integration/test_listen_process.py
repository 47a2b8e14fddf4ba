"""The edge's listener in a process of its own: the same targets, a child that dies is replaced,
and a child never outlives its worker."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from google.cloud import firestore

from devstack.stack import Emulator
from edge.listen_process import ListenProcess
from edge.settings import EdgeSettings
from tests.support import firestore_emulator as support
from tests.support.firestore_emulator import own_firestore

PROJECT = "listen-process-test"


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    monkeypatch.setenv("DEPLOYCHAT_PROJECT_ID", PROJECT)
    with own_firestore(tmp_path, monkeypatch) as emulator:
        yield emulator


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    support.wait_until(check, timeout)


class Seen:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, list[Any]] = defaultdict(list)
        self.threads: set[int] = set()

    def __call__(self, doc_id: str, data: dict[str, Any]) -> None:
        with self.lock:
            self.values[doc_id].append(data)
            self.threads.add(threading.get_ident())

    def seqs(self, doc_id: str) -> list[int]:
        with self.lock:
            return [int(d["last_seq"]) for d in self.values[doc_id]]


def test_documents_come_now_and_on_each_change_with_their_types(emulator: Emulator) -> None:
    db = firestore.Client(project=PROJECT)
    listener = ListenProcess(EdgeSettings(), backoff_s=(0.1, 1.0))
    seen = Seen()
    docs = [db.collection("sessions").document(f"lp{n}") for n in range(5)]
    at = datetime.datetime(2026, 12, 3, 10, 0, 0, 123000, tzinfo=datetime.UTC)
    docs[0].set({"last_seq": 7, "at": at, "tail": [{"seq": 7, "text": "héllo"}]})
    subscriptions = [listener.watch_document(doc, seen) for doc in docs]
    wait_until(lambda: seen.seqs("lp0") == [7])
    first = seen.values["lp0"][0]
    assert first["at"] == at and first["tail"] == [{"seq": 7, "text": "héllo"}]
    for doc in docs:
        doc.set({"last_seq": 8}, merge=True)
    wait_until(lambda: all(seen.seqs(d.id)[-1:] == [8] for d in docs))
    assert listener.targets == 5

    subscriptions[1].unsubscribe()
    docs[1].set({"last_seq": 9})
    docs[2].set({"last_seq": 9})
    wait_until(lambda: seen.seqs("lp2")[-1] == 9)
    time.sleep(0.5)
    assert seen.seqs("lp1") == [8], "an unsubscribed target hears nothing more"
    assert listener.targets == 4
    # The callbacks run in this process, on one thread: the reader's.
    assert len(seen.threads) == 1
    listener.close()


def test_a_child_that_dies_is_replaced_and_given_every_target_again(emulator: Emulator) -> None:
    db = firestore.Client(project=PROJECT)
    listener = ListenProcess(EdgeSettings(), backoff_s=(0.1, 1.0))
    seen = Seen()
    docs = [db.collection("sessions").document(f"die{n}") for n in range(10)]
    for doc in docs:
        doc.set({"last_seq": 1})
        listener.watch_document(doc, seen)
    wait_until(lambda: all(seen.seqs(d.id) == [1] for d in docs))
    first_pid = listener.pid
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)
    wait_until(lambda: listener.pid not in (None, first_pid))
    # The new child sends every document as it is now, then each change.
    wait_until(lambda: all(seen.seqs(d.id)[-1:] == [1] and len(seen.seqs(d.id)) >= 2 for d in docs))
    for doc in docs:
        doc.set({"last_seq": 2})
    wait_until(lambda: all(seen.seqs(d.id)[-1:] == [2] for d in docs))
    assert listener.restarts >= 1
    assert not psutil.pid_exists(first_pid) or psutil.Process(first_pid).status() == "zombie"
    listener.close()


def test_the_child_never_outlives_its_worker(emulator: Emulator, tmp_path: Path) -> None:
    """A worker killed outright (SIGKILL: no handler runs) leaves no listener behind: the child
    sees its stdin end and exits."""
    edge_dir = Path(__file__).resolve().parents[2] / "services" / "ws_edge"
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(edge_dir)!r})
        from edge.listen_process import ListenProcess
        from edge.settings import EdgeSettings
        listener = ListenProcess(EdgeSettings())
        listener.start()
        while listener.pid is None:
            time.sleep(0.05)
        print(listener.pid, flush=True)
        time.sleep(600)
        """
    )
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        child = int(worker.stdout.readline())
        assert psutil.pid_exists(child)
        worker.kill()
        worker.wait()
        wait_until(
            lambda: not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie",
            timeout=15,
        )
    finally:
        if worker.poll() is None:
            worker.kill()
