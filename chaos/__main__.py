"""python -m chaos [--seed N] [--sessions N] [--turns N] [--time-limit S]: run, check, print."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys

from bench.harness import raise_open_files_limit
from devstack.stack import EDGE_DIR, FUNCTION_DIR

from .faults import Plan
from .run import ChaosConfig, run_chaos


def main() -> int:
    # SIGTERM ends the run like Ctrl-C: the stack's processes are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    raise_open_files_limit()  # 500 sockets here, as many on the edges
    # The stack's own clean-up reads the agent's package (its local deployments).
    for package_dir in (str(FUNCTION_DIR), str(EDGE_DIR)):
        if package_dir not in sys.path:
            sys.path.insert(0, package_dir)
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--turns", type=int, default=10_000)
    parser.add_argument("--edges", type=int, default=3)
    parser.add_argument("--functions", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=3000.0, help="seconds, all included")
    parser.add_argument("--pause-s", type=float, default=20.0, help="Firestore SIGSTOP length")
    args = parser.parse_args()
    config = ChaosConfig(
        seed=args.seed,
        sessions=args.sessions,
        turns=args.turns,
        edges=args.edges,
        functions=args.functions,
        time_limit_s=args.time_limit,
        plan=dataclasses.replace(Plan(), firestore_pause_s=args.pause_s),
    )
    outcome = run_chaos(config)
    print(outcome.table())
    failures = outcome.verdict.failures()
    print("PASS: every promise held" if not failures else f"FAIL: {failures} broken promises")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
