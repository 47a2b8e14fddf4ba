"""Scenario 4: turns per second, end to end, until latency doubles.

200 sessions; the offered rate goes up step by step (open loop: a turn every 1/rate s on a
session with no turn running). At each step: completed turns per second, chat -> final p50/p99,
and the CPU of each process of the pipeline (edge, function, both emulators' JVMs, the fake
model in this process, the load clients). The run stops at the first step whose p50 is more
than twice the first step's, or that could not be offered (no idle session), or left turns
unfinished. The busiest process at that step is the bottleneck.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import psutil

from bench.clients import ClientPool
from bench.harness import INSTANT, BenchStack, CpuMeter, family
from bench.plan import Plan
from bench.scenarios.turns import summarize
from bench.stats import split

log = logging.getLogger("bench")

CPU_BOUND = 80.0  # % of a core from which a process counts as the one that limits
PUSH_IN_FLIGHT = 2  # the Pub/Sub emulator's NUM_CONCURRENT_PUSH_REQUESTS per subscription


def run(bench: BenchStack, plan: Plan) -> dict[str, Any]:
    procs = bench.processes()
    bench.fake.default = INSTANT
    steps: list[dict[str, Any]] = []
    saturated: dict[str, Any] | None = None
    with ClientPool(plan.workers) as pool:
        pool.call(
            "open",
            [
                {"host": "127.0.0.1", "port": bench.edge_port, "dialect": "ours", "count": n}
                for n in split(plan.throughput_sessions, pool.size)
            ],
        )
        # Steps outlast the edge's 75 s idle limit: sessions keep the protocol's heartbeat.
        pool.call("heartbeat", {"interval_s": plan.heartbeat_s})
        meter_procs = {
            "edge": family(procs.edge),
            "function": [procs.function],
            "pubsub": [procs.pubsub],
            "firestore": [procs.firestore],
            "bench+fake model": [psutil.Process(os.getpid())],
            "clients": [psutil.Process(pid) for pid in pool.pids],
        }
        base_p50: float | None = None
        for rate in plan.throughput_rates:
            started = time.time()
            with CpuMeter(meter_procs) as cpu:
                results = pool.call(
                    "turns",
                    [
                        {
                            "rate": rate / pool.size,
                            "duration_s": plan.step_s,
                            "max_turns": n,
                            "content": "How do I deploy a Flask app?",
                            "timeout_s": plan.turn_timeout_s,
                        }
                        for n in split(int(rate * plan.step_s) + pool.size, pool.size)
                    ],
                    timeout_s=plan.step_s + plan.turn_timeout_s + 60,
                )
            step = summarize(bench, results, rate)
            turns = [t for r in results for t in r["turns"]]
            ends = [t["sent_wall"] + t["end"] for t in turns if t["end"] is not None]
            span = (max(ends) - started) if ends else plan.step_s
            step["achieved_rate"] = round(len(ends) / max(span, plan.step_s), 1)
            step["cpu_percent"] = cpu.percent
            steps.append(step)
            p50 = step["final_ms"]["p50"]
            log.info(
                "throughput @%.0f/s: %.1f/s done, final p50 %s ms, CPU %s",
                rate,
                step["achieved_rate"],
                p50,
                cpu.percent,
            )
            if base_p50 is None:
                base_p50 = p50
            reasons = []
            if p50 is None or (base_p50 is not None and p50 > 2 * base_p50):
                reasons.append("latency doubled")
            if step["skipped"]:
                reasons.append("no idle session to offer a turn to")
            if step["unfinished"] or step["errors"]:
                reasons.append("turns unfinished or failed")
            if reasons:
                step["saturated"] = reasons
                saturated = step
                break
        pool.call("heartbeat", {"interval_s": 0})
        pool.call("close_all", {})
    held = [s for s in steps if "saturated" not in s]
    best = max(held, key=lambda s: s["achieved_rate"]) if held else None
    bottleneck = None
    if saturated is not None:
        busy = {k: v for k, v in saturated["cpu_percent"].items() if k != "clients"}
        name = max(busy, key=lambda k: busy[k])
        bottleneck = {"process": name, "cpu_percent": busy[name]}
        if busy[name] < CPU_BOUND:
            # Nothing is short of CPU: what queues is the emulator's push, which sends at most
            # PUSH_IN_FLIGHT requests at a time per subscription (hard-coded in the emulator).
            bottleneck["process"] = f"Pub/Sub emulator push ({PUSH_IN_FLIGHT} in flight)"
    return {
        "sessions": plan.throughput_sessions,
        "base_final_p50_ms": base_p50,
        "steps": steps,
        "sustained_rate": best["achieved_rate"] if best else None,
        "sustained_offered": best["rate"] if best else None,
        "saturated_at": saturated["rate"] if saturated else None,
        "saturation_reasons": saturated["saturated"] if saturated else [],
        "bottleneck": bottleneck,
    }
