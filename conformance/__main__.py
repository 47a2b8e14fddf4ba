"""`make conformance`: start the server under test, run Autobahn's fuzzing client against its
echo route, print the verdicts, exit 1 on any failure.

    python -m conformance [--target edge|flask-sock] [--quick] [--all-rows]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import cases, verdicts
from .targets import ROOT, TARGETS

WSTEST = ROOT / ".venv-autobahn" / "bin" / "wstest"
OUT = ROOT / "test-artifacts" / "conformance"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__)
    parser.add_argument("--target", choices=sorted(TARGETS), default="edge")
    parser.add_argument("--quick", action="store_true", help="the fixed subset of make test")
    parser.add_argument("--all-rows", action="store_true", help="a row for every case")
    parser.add_argument("--wstest", type=Path, default=WSTEST)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--timeout", type=float, default=900, help="seconds for wstest")
    args = parser.parse_args(argv)

    if not args.wstest.exists():
        print(f"{args.wstest} is missing: run `make conformance`", file=sys.stderr)
        return 2
    out: Path = args.out / args.target
    shutil.rmtree(out, ignore_errors=True)
    reports = out / "reports"
    reports.mkdir(parents=True)
    target = TARGETS[args.target](out)
    selected = cases.QUICK if args.quick else cases.FULL
    spec_path = out / "fuzzingclient.json"
    spec = cases.spec(agent=target.agent, url="", outdir=str(reports), cases=selected)

    target.start()
    try:
        spec["servers"] = [{"agent": target.agent, "url": target.ws_url}]
        spec_path.write_text(json.dumps(spec, indent=2))
        started = time.monotonic()
        with open(out / "wstest.log", "wb") as log:
            done = subprocess.run(
                [str(args.wstest), "--mode", "fuzzingclient", "--spec", str(spec_path)],
                cwd=out,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=args.timeout,
            )
        took = time.monotonic() - started
        alive = target.process.alive
    finally:
        target.stop()

    if done.returncode != 0 or not (reports / "index.json").exists():
        print(f"wstest failed ({done.returncode}); see {out / 'wstest.log'}", file=sys.stderr)
        return 2
    rows = verdicts.read(reports, target.agent)
    failed = [row for row in rows if row.failed]
    print(f"Autobahn|Testsuite against {target.agent} ({target.ws_url})")
    print(f"cases {' '.join(selected)}")
    print(verdicts.table(rows, every_case=args.all_rows))
    print("\nLeft out: 12.* and 13.* (permessage-deflate, which the edge refuses), and these,")
    print("over the 64 KiB frame limit (closed with 1009 by design):")
    for pattern, what in cases.OVER_THE_LIMIT.items():
        print(f"  {pattern}: {what}")
    print(f"\n{len(rows)} cases in {took:.0f} s; reports in {reports}")
    if not alive:
        print(f"the server died during the run; see {target.process.log_path}", file=sys.stderr)
        return 1
    if failed:
        print(f"{len(failed)} FAILED: " + " ".join(r.case for r in failed), file=sys.stderr)
        return 1
    print("0 FAILED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
