"""Scenario 2: fan-out. Events written into 1,000 connected sessions, each delivered once.

The writers are the agent's own `TurnLog` (services/agent_fn/agent/event_store.py): `begin()`
once per session, then one `append()` of an assistant piece per session per second, exactly the
transaction the function commits for each piece. They run in a few processes of several threads
each, every session on its own schedule. A thread waits for each of its transactions, so the
threads are sized from the asked rate and the append's latency (parallel writers); the rate they
reached is the headline, beside the rate asked, because on the emulator it is Firestore's commit
rate that runs out first.

write -> frame starts when `append()` is called, before the transaction's first request is
sent, and ends when the frame reached the client. (Measured from `append()` returning, it can be
negative: the listener hears of the commit before the commit's own answer is back.) Every
written (session, seq) must arrive exactly once.

Cost, as production bills it: each writer counts the documents its transactions read and the
writes they commit, for `begin` (once per turn: the user's message and typing) and for each
`append` of a piece. The edge adds one read per event per edge instance listening to the session
(a listener is billed each document that enters its result set), and the catch-up reads by seq
of sockets that replay.
"""

from __future__ import annotations

import collections
import logging
import math
import multiprocessing
import threading
import time
from typing import Any

from bench.clients import ClientPool
from bench.harness import BenchStack, CpuMeter, family
from bench.plan import Plan
from bench.stats import ms, split

log = logging.getLogger("bench")

Written = tuple[str, int, float, float]  # session, seq, append started, append returned


def run(bench: BenchStack, plan: Plan) -> dict[str, Any]:
    procs = bench.processes()
    with ClientPool(plan.workers) as pool:
        opened = pool.call(
            "open",
            [
                {"host": "127.0.0.1", "port": bench.edge_port, "dialect": "ours", "count": n}
                for n in split(plan.fanout_sessions, pool.size)
            ],
        )
        sessions = [sid for r in opened for sid in r["session_ids"]]
        log.info("fan-out: %d sessions connected", len(sessions))
        pool.call("record", {"on": True})
        start_at = time.time() + 3.0 + len(sessions) / 200  # time for every writer to begin()
        ctx = multiprocessing.get_context("spawn")
        queue: multiprocessing.Queue[dict[str, Any]] = ctx.Queue()
        shares = split(len(sessions), plan.writer_processes)
        # Enough threads for the asked rate at a loaded emulator's append latency (~250 ms).
        asked = plan.fanout_rate * len(sessions)
        threads = max(plan.writer_threads, math.ceil(asked * 0.25 / plan.writer_processes))
        writers, offset = [], 0
        for share in shares:
            mine = sessions[offset : offset + share]
            offset += share
            proc = ctx.Process(
                target=_writer,
                args=(mine, threads, start_at, plan.fanout_s, plan.fanout_rate, queue),
                daemon=True,
            )
            proc.start()
            writers.append(proc)
        cpu = CpuMeter(
            {
                "edge": family(procs.edge),
                "firestore": [procs.firestore],
                "writers": [_ps(p.pid) for p in writers if p.pid is not None],
                "clients": [_ps(pid) for pid in pool.pids],
            }
        )
        time.sleep(max(0.0, start_at - time.time()))
        with cpu:
            reports = [queue.get(timeout=plan.fanout_s + 120) for _ in writers]
        for proc in writers:
            proc.join(10)
        time.sleep(3.0)  # the last frames' way to the clients
        collected = pool.call("collect", {})
        pool.call("close_all", {})

    errors = [e for r in reports for e in r["errors"]]
    written: list[Written] = [w for r in reports for w in r["written"]]
    received: collections.Counter[tuple[str, int]] = collections.Counter()
    first_arrival: dict[tuple[str, int], float] = {}
    for result in collected:
        for session, seq, at in result["events"]:
            key = (session, seq)
            received[key] += 1
            first_arrival.setdefault(key, at)
    keys = {(s, q) for s, q, _, _ in written}
    lost = sorted(k for k in keys if k not in received)
    repeated = sum(n - 1 for n in received.values() if n > 1)
    unexpected = sum(1 for k in received if k not in keys)
    after_commit = [first_arrival[(s, q)] - done for s, q, _, done in written if (s, q) in received]
    after_start = [
        first_arrival[(s, q)] - began for s, q, began, _ in written if (s, q) in received
    ]
    append_s = [done - began for _, _, began, done in written]
    span = max(r["seconds"] for r in reports) if reports else 0.0
    cost = {
        key: sum(r["cost"].get(key, 0) for r in reports)
        for key in ("begins", "begin_reads", "begin_writes", "appends", "reads", "writes")
    }
    return {
        "sessions": len(sessions),
        "asked_rate": plan.fanout_rate * len(sessions),
        "seconds": plan.fanout_s,
        "written": len(written),
        "writer_rate": round(len(written) / span, 1) if span else 0.0,
        "writer_threads": threads * len(writers),
        "reads_per_piece": round(cost["reads"] / cost["appends"], 2) if cost["appends"] else None,
        "writes_per_piece": round(cost["writes"] / cost["appends"], 2) if cost["appends"] else None,
        "reads_per_begin": round(cost["begin_reads"] / cost["begins"], 2)
        if cost["begins"]
        else None,
        "writes_per_begin": (
            round(cost["begin_writes"] / cost["begins"], 2) if cost["begins"] else None
        ),
        "writer_late_p99_ms": ms([x for r in reports for x in r["late"]], 99)["p99"],
        "writer_errors": errors[:5],
        "writer_error_count": len(errors),
        "append_ms": ms(append_s, 50, 99),
        # The headline: from before the write is sent.
        "write_to_frame_ms": ms(after_start, 50, 95, 99),
        "commit_returned_to_frame_ms": ms(after_commit, 50, 95, 99),
        "lost": len(lost),
        "lost_examples": lost[:5],
        "repeated": repeated,
        "unexpected": unexpected,
        "protocol_errors": [e for r in collected for e in r["protocol_errors"]][:5],
        "cpu_percent": cpu.percent,
    }


def _ps(pid: int) -> Any:
    import psutil

    return psutil.Process(pid)


def _writer(
    sessions: list[str],
    threads: int,
    start_at: float,
    duration_s: float,
    rate: float,
    out: multiprocessing.Queue[dict[str, Any]],
) -> None:
    """One writer process: `threads` threads, each appending to its share of the sessions."""
    from google.cloud import firestore

    from agent.event_store import TurnLog

    db = firestore.Client()
    cost = _count_documents()
    written: list[Written] = []
    late: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def work(mine: list[str]) -> None:
        logs = []
        for session in mine:
            turn_id = f"fan-{session[:12]}"
            turn_log = TurnLog(db, session, turn_id, lease_s=3600, ttl_s=86400)
            counted = cost.snapshot()
            turn_log.begin()
            cost.note("begin", counted)
            logs.append((session, turn_id, turn_log))
        if not logs:
            return
        # Each session every 1/rate s; this thread's sessions evenly staggered in between. A
        # thread whose begins ran past the start (a loaded machine) starts its window late
        # rather than skipping it.
        step = 1.0 / rate / len(logs)
        begin_at = max(start_at, time.time())
        end = begin_at + duration_s
        k = 0
        text: dict[str, str] = collections.defaultdict(str)
        seqs: dict[str, int] = collections.defaultdict(int)
        while True:
            due = begin_at + k * step
            if due >= end or time.time() >= end:
                break  # bounded in time: a writer that fell behind stops at the end anyway
            session, turn_id, turn_log = logs[k % len(logs)]
            k += 1
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            piece = f"piece {seqs[session] + 1} "
            draft = {
                "type": "chat",
                "turn_id": turn_id,
                "message_id": f"{turn_id}-reply",
                "role": "assistant",
                "delta": piece,
                "final": False,
            }
            began = time.time()
            counted = cost.snapshot()
            try:
                turn_log.append([draft], {"emitted_text": text[session] + piece})
            except Exception as exc:
                with lock:
                    errors.append(repr(exc))
                continue
            done = time.time()
            cost.note("append", counted)
            text[session] += piece
            seqs[session] += 1
            with lock:
                written.append((session, seqs[session], began, done))
                late.append(max(0.0, began - due))

    shares = split(len(sessions), threads)
    pool, offset = [], 0
    for share in shares:
        thread = threading.Thread(target=work, args=(sessions[offset : offset + share],))
        offset += share
        thread.start()
        pool.append(thread)
    for thread in pool:
        thread.join()
    out.put(
        {
            "written": written,
            "late": late,
            "errors": errors,
            "seconds": max(duration_s, time.time() - start_at),
            "cost": cost.totals(),
        }
    )


class _DocumentCount:
    """Documents read and writes committed by this thread's transactions (retries included)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._totals: collections.Counter[str] = collections.Counter()

    def add(self, kind: str, n: int) -> None:
        counts = self._mine()
        counts[kind] += n

    def _mine(self) -> collections.Counter[str]:
        counts: collections.Counter[str] | None = getattr(self._local, "counts", None)
        if counts is None:
            counts = self._local.counts = collections.Counter()
        return counts

    def snapshot(self) -> tuple[int, int]:
        counts = self._mine()
        return counts["reads"], counts["writes"]

    def note(self, what: str, before: tuple[int, int]) -> None:
        reads, writes = self.snapshot()
        with self._lock:
            if what == "begin":
                self._totals["begins"] += 1
                self._totals["begin_reads"] += reads - before[0]
                self._totals["begin_writes"] += writes - before[1]
            else:
                self._totals["appends"] += 1
                self._totals["reads"] += reads - before[0]
                self._totals["writes"] += writes - before[1]

    def totals(self) -> dict[str, int]:
        with self._lock:
            return dict(self._totals)


def _count_documents() -> _DocumentCount:
    """Wrap the client's transaction reads and commits in this process to count them."""
    from google.cloud.firestore_v1 import transaction

    count = _DocumentCount()
    get_all, commit = transaction.Transaction.get_all, transaction.Transaction._commit

    def counted_get_all(self: Any, references: Any, *args: Any, **kwargs: Any) -> Any:
        snapshots = list(get_all(self, references, *args, **kwargs))
        count.add("reads", len(snapshots))  # a missing document is billed as a read too
        return iter(snapshots)

    def counted_commit(self: Any) -> Any:
        writes = len(self._write_pbs)
        result = commit(self)
        count.add("writes", writes)
        return result

    transaction.Transaction.get_all = counted_get_all  # type: ignore[method-assign]
    transaction.Transaction._commit = counted_commit  # type: ignore[method-assign]
    return count
