"""One chaos run: a multi-instance stack on 127.0.0.1, many sessions, faults, then the check."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.processes import free_port
from devstack.stack import MODEL_KEYS, ROOT, Stack, StackConfig

from .checker import Verdict, check, table
from .client import Behaviour, Frame, SessionClient, SessionLog, TurnState, replay
from .faults import Injector, Plan


@dataclass
class ChaosConfig:
    seed: int = 1
    sessions: int = 500
    turns: int = 10_000
    edges: int = 3
    functions: int = 3
    time_limit_s: float = 3000.0
    # The offline agent answers at once, in pieces this far apart: the emulators set the pace.
    piece_delay_ms: int = 20
    plan: Plan = field(default_factory=Plan)
    behaviour: Behaviour = field(default_factory=Behaviour)
    log_dir: Path = ROOT / ".devstack" / "chaos"
    quiet: bool = False


@dataclass
class Outcome:
    verdict: Verdict
    faults: dict[str, int]
    extra: dict[str, Any]

    def table(self) -> str:
        return table(self.verdict, self.faults, self.extra)


def stack_config(config: ChaosConfig) -> StackConfig:
    run = uuid.uuid4().hex[:8]
    return StackConfig(
        topic=f"chaos-{run}",
        edge_port=free_port(),
        log_dir=config.log_dir / f"run-{run}",
        min_backoff_s=1,
        max_backoff_s=5,
        edges=config.edges,
        functions=config.functions,
        balancer=True,
        sweep_interval_s=2.0,
        function_env={
            "DEPLOYCHAT_OFFLINE_PIECE_DELAY_MS": str(config.piece_delay_ms),
            # A dead attempt is known 3 beats after its last; a stuck turn is published again
            # by the next sweep, and again 10 s later while no attempt starts.
            "DEPLOYCHAT_TURN_HEARTBEAT_S": "1",
            "DEPLOYCHAT_SWEEP_RETRY_AFTER_S": "10",
            "DEPLOYCHAT_LOG_LEVEL": "WARNING",
        },
        edge_env={
            "DEPLOYCHAT_FEED_LINGER_S": "5",
            "DEPLOYCHAT_LISTEN_IDLE_TIMEOUT_S": "2",
            "DEPLOYCHAT_LISTEN_PROBE_TIMEOUT_S": "3",
            "DEPLOYCHAT_LOG_LEVEL": "WARNING",
        },
    )


def run_chaos(config: ChaosConfig, stack: Stack | None = None) -> Outcome:
    """Start a stack (unless given one), run the sessions and faults, check, stop."""

    def say(message: str) -> None:
        if not config.quiet:
            print(f"[chaos] {message}", flush=True)

    own = stack is None
    saved_env = dict(os.environ)
    if stack is None:
        # The offline agent: no model key reaches the function.
        for key in MODEL_KEYS:
            os.environ.pop(key, None)
        stack = Stack(stack_config(config))
        say(f"starting {config.edges} edges and {config.functions} function instances")
        stack.start()
    try:
        return asyncio.run(_run(config, stack, say))
    finally:
        if own:
            stack.stop()
            os.environ.clear()
            os.environ.update(saved_env)


async def _run(config: ChaosConfig, stack: Stack, say: Callable[[str], None]) -> Outcome:
    from tests.support.identity import sign_up_guest

    rng = random.Random(config.seed)
    started = time.monotonic()
    deadline = started + config.time_limit_s
    assert stack.auth is not None
    tokens = await asyncio.gather(
        *[asyncio.to_thread(sign_up_guest, stack.auth.host) for _ in range(config.sessions)]
    )
    logs = [SessionLog(index=i) for i in range(config.sessions)]
    for k in range(config.turns):
        i = k % config.sessions
        turn_id = f"c{config.seed}-{i}-{len(logs[i].turns)}"
        logs[i].turns.append(TurnState(turn_id, f"chaos turn {turn_id}: hello"))
    acked = [0]

    def on_ack(_log: SessionLog, _turn: str) -> None:
        acked[0] += 1

    clients = [
        SessionClient(
            log,
            stack.ws_urls,
            tokens[log.index].id_token,
            random.Random(rng.getrandbits(64)),
            config.behaviour,
            on_ack,
        )
        for log in logs
    ]

    def acked_turns() -> list[tuple[str, str, str, bool]]:
        return [
            (log.session_id, t.id, t.content, t.ended)
            for log in logs
            if log.session_id is not None
            for t in log.turns
            if t.acked
        ]

    injector = Injector(stack, config.plan, random.Random(rng.getrandbits(64)), acked_turns, say)
    schedule = config.plan.schedule(random.Random(rng.getrandbits(64)))
    faults = asyncio.create_task(injector.run(schedule, lambda: acked[0] / config.turns))
    say(f"{config.sessions} sessions, {config.turns} turns, {len(schedule)} faults planned")

    async def session(client: SessionClient, delay: float) -> None:
        await asyncio.sleep(delay)  # not all at once: sessions open over the first seconds
        try:
            await client.run(deadline - 60)
        except Exception as exc:  # the client's own bug must not hide the others' results
            client.log.failure = repr(exc)

    async def progress() -> None:
        while True:
            await asyncio.sleep(15)
            ended = sum(1 for log in logs for t in log.turns if t.ended)
            say(f"{time.monotonic() - started:5.0f} s: {acked[0]} acked, {ended} ended")

    reporter = asyncio.create_task(progress())
    spread = min(60.0, config.sessions / 5)
    await asyncio.gather(*[session(c, rng.uniform(0, spread)) for c in clients])
    ran = time.monotonic() - started
    reporter.cancel()
    if not faults.done():
        # The last faults still fire (an instance restarting, Firestore frozen): the clients
        # have answered everything, and the check below reads the logs after them.
        say("turns ended before every planned fault fired: letting them finish")
        try:
            await asyncio.wait_for(asyncio.shield(faults), max(1.0, deadline - time.monotonic()))
        except TimeoutError:
            faults.cancel()
    await asyncio.gather(faults, return_exceptions=True)

    say("replaying every session from 0")
    urls = stack.ws_urls
    gate = asyncio.Semaphore(25)

    async def replayed(log: SessionLog) -> tuple[SessionLog, list[Frame] | None]:
        if log.session_id is None:
            return log, None
        async with gate:
            for attempt in range(5):
                try:
                    token = tokens[log.index].id_token
                    return log, await replay(rng.choice(urls), token, log.session_id)
                except Exception as exc:
                    if attempt == 4:
                        log.failure = f"replay failed: {exc!r}"
                    await asyncio.sleep(1)
        return log, None

    results = await asyncio.gather(*[replayed(log) for log in logs])
    verdict = check(list(results))
    refused: Counter[str] = Counter()
    for log in logs:
        refused.update(log.refused)
    extra: dict[str, Any] = {
        "client: connections": sum(log.connects for log in logs),
        "client: drops mid-stream": sum(log.drops for log in logs),
        "client: resends of an acked id": sum(log.resends for log in logs),
        "client: cancels": sum(log.cancels for log in logs),
        "client: closes 1012 (drain)": sum(log.restarts_seen for log in logs),
        **{f"client: refused ({code})": n for code, n in sorted(refused.items())},
        "instances: edges / functions": f"{len(stack.edges)}/{len(stack.functions)}",
        "seed": config.seed,
        "seconds (turns)": round(ran),
        "turns answered per second": round(verdict.answered / max(ran, 1), 1),
    }
    for problem in verdict.problems[:20]:
        say(f"problem: {problem}")
    return Outcome(verdict, dict(injector.done), extra)
