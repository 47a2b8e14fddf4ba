"""Scenarios 1 and 5: idle capacity and ping latency, for the edge and for its two peers.

One growing set of sockets: open up to the first size, measure, open more up to the next size,
measure, and so on while every socket is still held. At each size:

- memory: the server's RSS with the sockets held (after an idle window with heartbeats), minus
  its RSS with the few warm-up sockets, divided by the sockets added: KB per socket, including
  for the edge each session's feed and listener target;
- CPU while idle: the server's CPU over the idle window, with every socket sending the
  protocol's heartbeat (a ping every 30 s, spread evenly);
- ping -> pong p50/p99 with pings spread over time (200 a second, round robin) and with every
  socket pinging at the same instant (all client processes start at one wall-clock time; one
  warm-up round, then `bursts` measured rounds).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psutil

from bench.clients import ClientPool, Dialect
from bench.harness import CpuMeter, family, rss
from bench.plan import Plan
from bench.stats import close_codes, ms, split

log = logging.getLogger("bench")


def measure(
    name: str, port: int, dialect: Dialect, server: psutil.Process, plan: Plan
) -> dict[str, Any]:
    """Run the capacity steps against one server; `server` is the process that holds them."""
    with ClientPool(plan.workers) as pool:
        target = {"host": "127.0.0.1", "port": port, "dialect": dialect}

        def open_more(count: int) -> dict[str, Any]:
            results = pool.call(
                "open",
                [
                    {**target, "count": n, "concurrency": plan.open_concurrency}
                    for n in split(count, pool.size)
                ],
            )
            return {
                "opened": sum(r["opened"] for r in results),
                "failed": sum(r["failed"] for r in results),
                "errors": [e for r in results for e in r["errors"]][:3],
                "seconds": max(r["seconds"] for r in results),
            }

        warm = open_more(plan.warm)
        if warm["opened"] < plan.warm:
            raise RuntimeError(f"{name}: warm-up sockets failed: {warm['errors']}")
        _burst(pool)
        time.sleep(1.0)
        base = rss(server)
        held = warm["opened"]
        steps: list[dict[str, Any]] = []
        for size in plan.sizes:
            if size <= held:
                continue
            # The held sockets keep their heartbeat while more open, as real clients do: the
            # edge closes a socket silent for its idle limit (75 s), and opening takes longer.
            pool.call("heartbeat", {"interval_s": plan.heartbeat_s})
            opening = open_more(size - held)
            status = pool.call("status", {})
            held = sum(s["open"] for s in status)
            closed_by_server = close_codes(status)
            log.info(
                "%s: %d sockets held (%d failed) in %.1fs",
                name,
                held,
                opening["failed"],
                opening["seconds"],
            )
            pool.call("heartbeat", {"interval_s": plan.heartbeat_s})
            time.sleep(plan.settle_s)
            with CpuMeter({"server": family(server)}) as cpu:
                time.sleep(plan.idle_s)
            memory = rss(server)
            heartbeats = _latencies(pool.call("heartbeat", {"interval_s": 0}))
            spread = pool.call(
                "ping_spread",
                {"rate": plan.spread_rate / pool.size, "duration_s": plan.spread_s},
                timeout_s=plan.spread_s + 60,
            )
            _burst(pool)  # warm-up round, not counted
            bursts = [_burst(pool) for _ in range(plan.bursts)]
            burst_latencies = [x for b in bursts for x in b["latencies"]]
            step = {
                "size": size,
                "held": held,
                "failed": opening["failed"],
                "errors": opening["errors"],
                "closed_by_server": closed_by_server,  # close codes so far, by code
                "open_seconds": round(opening["seconds"], 2),
                "open_rate": round(opening["opened"] / max(1e-3, opening["seconds"]), 1),
                "rss_mb": round(memory / 2**20, 1),
                "base_rss_mb": round(base / 2**20, 1),
                "kb_per_socket": round((memory - base) / max(1, held - plan.warm) / 1024, 1),
                "idle_cpu_percent": cpu.percent["server"],
                "heartbeat_ms": ms(heartbeats, 50, 99),
                "spread": {
                    "rate": plan.spread_rate,
                    "sent": sum(r["sent"] for r in spread),
                    "lost": sum(r["sent"] - len(r["latencies"]) for r in spread),
                    **ms(_latencies(spread), 50, 99),
                },
                "burst": {
                    "rounds": plan.bursts,
                    "sent": sum(b["sent"] for b in bursts),
                    "lost": sum(b["lost"] for b in bursts),
                    "client_send_span_ms": round(max(b["send_span"] for b in bursts) * 1000, 1),
                    **ms(burst_latencies, 50, 99),
                    "rounds_p99": [ms(b["latencies"], 99)["p99"] for b in bursts],
                },
            }
            steps.append(step)
            log.info(
                "%s @%d: %.1f KB/socket, idle CPU %.1f%%, spread p99 %s ms, burst p99 %s ms",
                name,
                held,
                step["kb_per_socket"],
                step["idle_cpu_percent"],
                step["spread"]["p99"],
                step["burst"]["p99"],
            )
            if held < size:
                break
        pool.call("close_all", {})
    return {"server": name, "dialect": dialect, "steps": steps}


def _latencies(results: list[dict[str, Any]]) -> list[float]:
    return [x for r in results for x in r["latencies"]]


def _burst(pool: ClientPool) -> dict[str, Any]:
    """Every socket of every client process pings at one wall-clock instant."""
    results = pool.call("ping_burst", {"at_wall": time.time() + 0.5, "timeout_s": 10.0})
    latencies = _latencies(results)
    sent = sum(r["sent"] for r in results)
    time.sleep(0.3)
    return {
        "latencies": latencies,
        "sent": sent,
        "lost": sent - len(latencies),
        "send_span": max(r["send_span"] for r in results),
    }
