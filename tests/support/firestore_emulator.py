"""A Firestore emulator of a test's own, for tests of the edge's listener (not the shared stack)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devstack.stack import Emulator, StackConfig


@contextmanager
def own_firestore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """Started, ready, and named by FIRESTORE_EMULATOR_HOST for the test's clients."""
    emulator = Emulator("firestore", StackConfig(log_dir=tmp_path))
    emulator.start()
    emulator.wait_ready()
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", emulator.host)
    try:
        yield emulator
    finally:
        emulator.stop()


def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
