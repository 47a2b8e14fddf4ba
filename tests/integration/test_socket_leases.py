"""Open sockets' records (the per-user socket limit): renewed together, in batches."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.cloud import firestore

from devstack.stack import Emulator, StackConfig
from edge.limits import SOCKETS, RateLimited, SocketRegistry, user_ref

PROJECT = "leases-test"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[firestore.Client]:
    emulator = Emulator("firestore", StackConfig(log_dir=tmp_path))
    emulator.start()
    emulator.wait_ready()
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", emulator.host)
    yield firestore.Client(project=PROJECT)
    emulator.stop()


def expires_at(db: firestore.Client, uid: str, socket_id: str) -> float | None:
    snap = user_ref(db, uid).collection(SOCKETS).document(socket_id).get()
    return float((snap.to_dict() or {})["expires_at"]) if snap.exists else None


def test_every_live_socket_is_renewed_in_batches_and_a_closed_one_is_not(
    db: firestore.Client,
) -> None:
    registry = SocketRegistry(db, limit=3, lease_s=4.0)
    registry.BATCH = 2  # several batches from a few sockets
    users = [f"u-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    sockets = [(uid, f"s{n}") for uid in users for n in range(2)]
    for uid, socket_id in sockets:
        registry.open(uid, socket_id)
    registry.close(*sockets[0])
    # (A round may already have run while the sockets were opening: count from here.)
    base = registry.renewals
    first = {s: expires_at(db, *s) for s in sockets[1:]}
    assert expires_at(db, *sockets[0]) is None

    # The renewer runs every half lease (2 s): the five live records move on, all of them.
    deadline = time.monotonic() + 60
    while registry.renewals < base + 10:  # two rounds: one may have read before `first`
        assert time.monotonic() < deadline, f"renewed {registry.renewals - base} records"
        time.sleep(0.1)
    for s in sockets[1:]:
        renewed = expires_at(db, *s)
        assert renewed is not None and renewed > (first[s] or 0)
    assert expires_at(db, *sockets[0]) is None, "a closed socket's record stays deleted"


def test_the_limit_counts_only_unexpired_records(db: firestore.Client) -> None:
    registry = SocketRegistry(db, limit=1, lease_s=60.0)
    uid = f"u-{uuid.uuid4().hex[:8]}"
    registry.open(uid, "a")
    with pytest.raises(RateLimited):
        registry.open(uid, "b")
    registry.open(uid, "a")  # the same socket again (a retried init) is not another one
    registry.close(uid, "a")
    registry.open(uid, "b")
