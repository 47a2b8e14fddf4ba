"""The small `make chaos`: a few hundred turns over 2 edges and 2 function instances, with a few
faults of every kind (a Firestore pause and killed function instances among them), checked by a
client that knows only the protocol. Every failure column must be 0."""

from __future__ import annotations

import os

import pytest

from chaos.faults import Plan
from chaos.run import ChaosConfig, run_chaos
from tests.conftest import ARTIFACTS


@pytest.mark.timeout(1200)  # a stack of 11 processes; slow to start on a busy machine
def test_a_small_chaos_run_breaks_no_promise() -> None:
    saved = dict(os.environ)
    try:
        outcome = run_chaos(
            ChaosConfig(
                seed=7,
                sessions=40,
                turns=240,
                edges=2,
                functions=2,
                time_limit_s=420,
                plan=Plan(
                    edge_sigkill=1,
                    edge_sigterm=1,
                    function_sigkill=2,
                    function_sigterm=1,
                    firestore_pause=1,
                    firestore_pause_s=20,
                    duplicate_publish=6,
                    reorder_publish=3,
                ),
                log_dir=ARTIFACTS / "logs" / "chaos",
            )
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)
    print(outcome.table())
    verdict = outcome.verdict
    assert verdict.acked == verdict.sent == 240
    assert verdict.failures() == 0, verdict.problems
    assert verdict.answered == 240
    assert outcome.faults.get("firestore_pause") == 1
    assert outcome.faults.get("function_sigkill") == 2
