"""`make bench` at a tiny size, so the benchmarks cannot rot: every scenario runs, the table
and the JSON appear, and the fan-out loses and repeats nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.plan import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmarks_run_end_to_end(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "| scenario" in done.stdout and "RSS per socket, KB" in done.stdout, done.stdout

    document = json.loads((tmp_path / "latest.json").read_text())
    assert document["errors"] == {}
    results = document["results"]
    assert set(results) == set(SCENARIOS)
    assert document["table"] in done.stdout

    for server in (results["capacity"], *results["peers"].values()):
        (step,) = server["steps"]
        assert step["held"] == step["size"], server
        assert step["spread"]["lost"] == 0 and step["burst"]["lost"] == 0, server

    fanout = results["fanout"]
    assert fanout["written"] > 0
    assert fanout["lost"] == 0 and fanout["repeated"] == 0 and fanout["unexpected"] == 0

    turns = results["turns"]
    for run in (turns["instant"], turns["streaming"]):
        assert run["completed"] == run["started"] > 0 and run["errors"] == 0, run
    assert results["throughput"]["steps"], results["throughput"]

    # The drain, last: every reader open at the SIGTERM got its 1012.
    drain = results["slow_readers"]["drain"]
    assert drain["readers_1012"] == drain["readers"] > 0, drain
    assert drain["readers_left_open"] == 0, drain
