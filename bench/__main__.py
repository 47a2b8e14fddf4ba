"""`python -m bench` (`make bench`): run the scenarios, print the table, write the JSON.

python -m bench                         # everything, full sizes (about 12 minutes)
python -m bench --quick                 # tiny sizes and windows (the smoke test's run)
python -m bench --scenarios capacity,peers --sizes 1000,5000
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench import report
from bench.harness import BenchStack, host_info, raise_open_files_limit
from bench.peers import Peer, PeerKind
from bench.plan import SCENARIOS, Plan, quick_plan
from devstack.stack import EDGE_DIR, FUNCTION_DIR

RESULTS = Path(__file__).resolve().parent / "results"
log = logging.getLogger("bench")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, short windows")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, of: {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--sizes", help="idle capacity sizes, comma-separated (e.g. 1000,5000)")
    parser.add_argument("--workers", type=int, help="client processes")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    plan = quick_plan() if args.quick else Plan()
    chosen = tuple(s.strip() for s in args.scenarios.split(",") if s.strip())
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
    plan.scenarios = chosen
    if args.sizes:
        plan.sizes = sorted(int(s) for s in args.sizes.split(","))
    if args.workers:
        plan.workers = args.workers
    return plan


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    limit = raise_open_files_limit()
    # The writers of the fan-out run the agent's own TurnLog (package `agent`).
    for package_dir in (str(FUNCTION_DIR), str(EDGE_DIR)):
        if package_dir not in sys.path:
            sys.path.insert(0, package_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_dir = args.results_dir / "logs" / stamp
    document: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "host": host_info(),
        "plan": vars(plan),
        "firestore_emptied_before_each_scenario": True,
    }
    log.info("open files limit %d; logs in %s", limit, log_dir)
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    started = time.monotonic()

    def scenario(name: str, body: Callable[[], Any]) -> None:
        if name not in plan.scenarios:
            return
        log.info("scenario %s", name)
        t0 = time.monotonic()
        try:
            # Each scenario starts on an empty Firestore emulator: its queries scan every
            # document in the database (one session's 10 newest events: 13 ms empty, 91 ms
            # with 30,000 events elsewhere), so one scenario's leftovers (8,000 sessions and
            # socket records from the capacity steps) would slow the next one's every listener.
            # Production Firestore's queries cost what they return.
            if bench.stack is not None and name != "peers":
                # After a heavy scenario the emulator may take a while to answer.
                bench.stack.reset_firestore(timeout=120.0)
            results[name] = body()
        except Exception:
            errors[name] = traceback.format_exc()
            log.error("scenario %s failed:\n%s", name, errors[name])
        log.info("scenario %s took %.0fs", name, time.monotonic() - t0)

    with BenchStack(log_dir) as bench:
        from bench.scenarios import capacity, fanout, slow_readers, throughput, turns

        procs = bench.processes()
        scenario(
            "capacity",
            lambda: capacity.measure("deploychat", bench.edge_port, "ours", procs.edge, plan),
        )

        def peers() -> dict[str, Any]:
            out: dict[str, Any] = {}
            kinds: list[tuple[PeerKind, str]] = [
                ("bare", "websockets"),
                ("socketio", "socketio"),
                ("flasksock", "flask-sock"),
            ]
            for kind, name in kinds:
                with Peer(kind, log_dir) as peer:
                    server = psutil.Process(peer.server_pid)
                    # The flask-sock peer speaks the bare dialect (pings, no init).
                    dialect = "bare" if kind == "flasksock" else kind
                    out[name] = capacity.measure(name, peer.port, dialect, server, plan)
            return out

        scenario("peers", peers)
        scenario("fanout", lambda: fanout.run(bench, plan))
        scenario("turns", lambda: turns.run(bench, plan))
        scenario("throughput", lambda: throughput.run(bench, plan))
        scenario("slow_readers", lambda: slow_readers.run(bench.edge_port, procs.edge, plan))

    document["results"] = results
    document["errors"] = errors
    document["seconds"] = round(time.monotonic() - started)
    text = report.table(report.build_rows(results))
    document["table"] = text
    path = report.write(args.results_dir, document)
    print(text)
    print(f"\n{len(results)} scenarios in {document['seconds']} s; figures in {path}")
    if errors:
        print(f"FAILED: {', '.join(errors)} (see the log above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DEPLOYCHAT_LOG_FORMAT", "text")
    sys.exit(main())
