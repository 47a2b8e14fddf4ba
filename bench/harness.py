"""The stack under test, the processes to watch, and how their CPU and memory are read."""

from __future__ import annotations

import resource
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from devstack.processes import free_port
from devstack.stack import Stack, StackConfig
from tests.support.fake_gemini import FakeGemini, Reply

# What the fake model answers when a scenario does not say otherwise: at once, in a few pieces.
INSTANT = Reply(chunks=["Sure, ", "here is ", "what you ", "asked ", "for."])
# Like a real model: the first token after 500 ms, then 30 pieces over 3 s.
STREAMING = Reply(chunks=[f"word{i} " for i in range(30)], first_delay_s=0.5, delay_s=0.1)


def raise_open_files_limit() -> int:
    """Soft limit up to the hard one; the stack's processes inherit it. Returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def function_env(fake: FakeGemini) -> dict[str, str]:
    """The real function, talking to the fake Gemini; every other setting is the default."""
    return {
        "GEMINI_API_KEY": "fake-key",
        "GOOGLE_GEMINI_BASE_URL": fake.url,
    }


class BenchStack:
    """The whole stack on the emulators (devstack), with the fake model in this process."""

    def __init__(self, log_dir: Path) -> None:
        self.fake = FakeGemini(default=INSTANT)
        self.log_dir = log_dir
        self.stack: Stack | None = None

    def __enter__(self) -> BenchStack:
        self.fake.start()
        config = StackConfig(
            topic=f"bench-{uuid.uuid4().hex[:8]}",
            edge_port=free_port(),
            log_dir=self.log_dir,
            function_env=function_env(self.fake),
            # Every socket signs in (a guest per few sockets, bench/client_frames.py); the per-user
            # turn limits are lifted, since the throughput scenario offers more turns per
            # session than a person sends: what is measured is the pipeline, not the limit.
            edge_env={
                "DEPLOYCHAT_TURNS_PER_MINUTE": "1000000",
                "DEPLOYCHAT_CANCELS_PER_MINUTE": "1000000",
            },
        )
        self.stack = Stack(config)
        try:
            self.stack.start()
        except BaseException:
            self.fake.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.stack is not None:
            self.stack.stop()
        self.fake.stop()

    @property
    def edge_port(self) -> int:
        assert self.stack is not None
        return self.stack.config.edge_port

    def processes(self) -> Processes:
        """The processes that do the work, found from the stack's children."""
        stack = self.stack
        assert stack is not None and stack.edge and stack.function
        assert stack.pubsub and stack.firestore
        edge, function = stack.edge.proc, stack.function.proc
        pubsub, firestore = stack.pubsub.process.proc, stack.firestore.process.proc
        assert edge and function and pubsub and firestore
        return Processes(
            edge=_gunicorn_worker(edge.pid),
            function=_gunicorn_worker(function.pid),
            pubsub=_jvm(pubsub.pid),
            firestore=_jvm(firestore.pid),
        )


@dataclass
class Processes:
    edge: psutil.Process  # the gunicorn worker that holds the sockets (the master only watches)
    function: psutil.Process  # functions-framework's gunicorn worker
    pubsub: psutil.Process  # the emulators' JVMs
    firestore: psutil.Process


def _gunicorn_worker(master_pid: int) -> psutil.Process:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = psutil.Process(master_pid).children()
        if children:
            return children[0]
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn {master_pid} has no worker")


def _jvm(gcloud_pid: int) -> psutil.Process:
    for proc in psutil.Process(gcloud_pid).children(recursive=True):
        if proc.name() == "java":
            return proc
    raise RuntimeError(f"no JVM under {gcloud_pid}")


def family(proc: psutil.Process) -> list[psutil.Process]:
    """A server process and every process it started: the edge worker's figures include its
    listener process (edge/listen_process.py), which works for its sockets."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return [proc]


def rss(proc: psutil.Process) -> int:
    total = 0
    for member in family(proc):
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total


class CpuMeter:
    """CPU used by each named process over a window, in % of one core."""

    def __init__(self, procs: Mapping[str, Iterable[psutil.Process]]) -> None:
        self._procs = {name: list(group) for name, group in procs.items()}
        self._start: dict[str, float] = {}
        self._t0 = 0.0
        self.percent: dict[str, float] = {}

    def _cpu(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, group in self._procs.items():
            total = 0.0
            for proc in group:
                try:
                    times = proc.cpu_times()
                except psutil.Error:
                    continue
                total += times.user + times.system
            out[name] = total
        return out

    def __enter__(self) -> CpuMeter:
        self._start = self._cpu()
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.percent = self.read()

    def read(self) -> dict[str, float]:
        elapsed = max(1e-6, time.monotonic() - self._t0)
        now = self._cpu()
        return {
            name: round(100 * (now[name] - self._start.get(name, 0.0)) / elapsed, 1) for name in now
        }


def host_info() -> dict[str, Any]:
    import platform
    import subprocess

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    load1, _, _ = psutil.getloadavg()
    return {
        "cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
        "load_at_start": round(load1, 2),
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }
