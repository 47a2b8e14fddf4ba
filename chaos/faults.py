"""The faults a run injects into the stack, on a seeded schedule, one at a time.

Process faults (an edge or a function instance SIGKILLed or SIGTERMed, then started again, the
Firestore emulator frozen with SIGSTOP) fire as the run's acked turns pass given fractions of
its total, so a short run and a long one see the same faults at the same points of their
progress. Publish faults (a turn's copy straight to the topic without ordering key, answered
turns again in reverse order) go to turns the clients have acked.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devstack.stack import Stack

PROCESS_FAULTS = (
    "edge_sigkill",
    "edge_sigterm",
    "function_sigkill",
    "function_sigterm",
    "firestore_pause",
)


@dataclass(frozen=True)
class Plan:
    """How many faults of each kind a run injects."""

    edge_sigkill: int = 3
    edge_sigterm: int = 3
    function_sigkill: int = 3
    function_sigterm: int = 3
    firestore_pause: int = 1
    firestore_pause_s: float = 20.0
    duplicate_publish: int = 30  # a copy of an acked turn (running or answered)
    reorder_publish: int = 10  # two answered turns of a session again, newest first

    def schedule(self, rng: random.Random) -> list[tuple[float, str]]:
        """(fraction of the run's turns acked, fault) in order, between 5 % and 70 %."""
        kinds = [k for k in (*PROCESS_FAULTS, "duplicate_publish", "reorder_publish")]
        faults = [k for k in kinds for _ in range(int(getattr(self, k)))]
        points = sorted(rng.uniform(0.05, 0.70) for _ in faults)
        rng.shuffle(faults)
        return list(zip(points, faults, strict=True))


class Publisher:
    """Turns straight to the stack's topic, as a misbehaving publisher would send them."""

    def __init__(self, stack: Stack) -> None:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined,unused-ignore]

        self._client = pubsub_v1.PublisherClient()
        self._topic = self._client.topic_path(stack.config.project, stack.config.topic)

    def publish(self, session_id: str, turn_id: str, content: str) -> None:
        from deploychat.turn_message import TurnRequest

        turn = TurnRequest(
            session_id=session_id, turn_id=turn_id, content=content, accepted_at=time.time()
        )
        data, attributes = turn.to_pubsub()
        self._client.publish(self._topic, data, **attributes).result(30)


class Injector:
    def __init__(
        self,
        stack: Stack,
        plan: Plan,
        rng: random.Random,
        acked_turns: Callable[[], list[tuple[str, str, str, bool]]],
        log: Callable[[str], None] = print,
    ) -> None:
        self._stack = stack
        self._plan = plan
        self._rng = rng
        self._acked = acked_turns  # (session_id, turn_id, content, ended) of acked turns
        self._log = log
        self.done: Counter[str] = Counter()
        self._publisher: Publisher | None = None
        # A process fault runs in the background (a restart takes tens of seconds), at most
        # one per group at a time, so that at least one instance of each kind stays up.
        self._busy: dict[str, asyncio.Task[None]] = {}

    async def run(self, schedule: list[tuple[float, str]], progress: Callable[[], float]) -> None:
        for point, fault in schedule:
            while progress() < point:
                await asyncio.sleep(0.5)
            group = fault.split("_")[0]  # edge, function, firestore, or a publish
            if group in ("edge", "function", "firestore"):
                running = self._busy.get(group)
                if running is not None:
                    await asyncio.gather(running, return_exceptions=True)
                self._busy[group] = asyncio.create_task(self._one(fault, point))
            else:
                await self._one(fault, point)
        await asyncio.gather(*self._busy.values(), return_exceptions=True)

    async def _one(self, fault: str, point: float) -> None:
        started = time.monotonic()
        try:
            await self.inject(fault)
        except Exception as exc:  # a fault that could not be made is reported, not fatal
            self._log(f"fault {fault} failed: {exc!r}")
            self.done[f"{fault} (failed)"] += 1
            return
        self.done[fault] += 1
        self._log(f"fault {fault} at {point:.0%} took {time.monotonic() - started:.1f} s")

    async def inject(self, fault: str) -> None:
        stack = self._stack
        if fault in ("edge_sigkill", "edge_sigterm"):
            index = self._rng.randrange(len(stack.edges))
            await asyncio.to_thread(
                self._restart, stack.edges[index], fault, stack.start_edge, index
            )
        elif fault in ("function_sigkill", "function_sigterm"):
            index = self._rng.randrange(len(stack.functions))
            await asyncio.to_thread(
                self._restart, stack.functions[index], fault, stack.start_function, index
            )
        elif fault == "firestore_pause":
            assert stack.firestore is not None
            stack.firestore.process.signal(signal.SIGSTOP)
            try:
                await asyncio.sleep(self._plan.firestore_pause_s)
            finally:
                stack.firestore.process.signal(signal.SIGCONT)
        elif fault == "duplicate_publish":
            turns = self._acked()
            if not turns:
                raise LookupError("no acked turn yet")
            session_id, turn_id, content, _ = self._rng.choice(turns)
            await asyncio.to_thread(self.publisher.publish, session_id, turn_id, content)
        elif fault == "reorder_publish":
            answered = [t for t in self._acked() if t[3]]
            by_session: dict[str, list[tuple[str, str, str, bool]]] = {}
            for turn in answered:
                by_session.setdefault(turn[0], []).append(turn)
            pairs = [turns[-2:] for turns in by_session.values() if len(turns) >= 2]
            if not pairs:
                raise LookupError("no session with two answered turns yet")
            older, newer = self._rng.choice(pairs)
            for session_id, turn_id, content, _ in (newer, older):
                await asyncio.to_thread(self.publisher.publish, session_id, turn_id, content)
        else:
            raise ValueError(fault)

    @property
    def publisher(self) -> Publisher:
        if self._publisher is None:
            self._publisher = Publisher(self._stack)
        return self._publisher

    @staticmethod
    def _restart(proc: Any, fault: str, start: Callable[[int], None], index: int) -> None:
        if proc is not None:
            if fault.endswith("sigkill"):
                proc.kill()
            else:
                proc.stop()  # SIGTERM, and SIGKILL after 10 s if still there
        start(index)
