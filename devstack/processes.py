"""Child processes of the local stack: each in its own process group, stopped as a group.

A reaper process outlives this one: it is told every group started here, and when this process
dies (even by SIGKILL, when nothing here runs any more) its end of a pipe closes and it kills
whatever group is left. So no emulator, edge or function outlives the stack that started it.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO

# Ports for the stack's servers come from below the kernel's ephemeral range (32768-60999 on
# Linux). A port the kernel hands out for "bind to 0" is also what it hands out to the next
# outgoing connection, so between choosing one and a server binding it, any of the tests'
# thousands of client connections could take it (seen in CI: the balancer's port, taken
# while the emulators started). Nothing picks ports in this range by itself, and no port is
# handed out twice by one process.
_PORT_RANGE = range(20000, 32768)
_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A port no process listens on now, from outside the ephemeral range, new to this process."""
    rng = random.SystemRandom()
    with _ports_lock:
        for _ in range(1000):
            port = rng.choice(_PORT_RANGE)
            if port in _handed_out:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port in 20000-32767")


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


# The reaper: reads "+PGID" / "-PGID" lines; at end of input, SIGTERM to every group left, then
# SIGKILL to what did not go within 3 s. Its own session, so a Ctrl-C meant for us misses it.
_REAPER = r"""
import os, signal, sys, time
groups = set()
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
for line in sys.stdin:
    line = line.strip()
    if line[:1] in "+-" and line[1:].isdigit():
        (groups.add if line[0] == "+" else groups.discard)(int(line[1:]))
def alive(g):
    try:
        os.killpg(g, 0)
        return True
    except OSError:
        return False
for sig in (signal.SIGTERM, signal.SIGKILL):
    for g in [g for g in groups if alive(g)]:
        try:
            os.killpg(g, sig)
        except OSError:
            pass
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and any(alive(g) for g in groups):
        time.sleep(0.1)
"""


class _Reaper:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def _send(self, line: str) -> None:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = subprocess.Popen(
                    [sys.executable, "-c", _REAPER],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            assert self._proc.stdin is not None
            with contextlib.suppress(OSError):
                self._proc.stdin.write(f"{line}\n".encode())
                self._proc.stdin.flush()

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}")

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}")


REAPER = _Reaper()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ManagedProcess:
    """A child with its output in a log file (and, if asked, echoed with a prefix)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        log_path: Path,
        cwd: Path | None = None,
        echo: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.log_path = log_path
        self.cwd = cwd
        self.echo = echo
        self.proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own group: Ctrl-C in a terminal does not reach it, and stop() reaches all of
            # its descendants (gcloud starts the emulator's JVM as a grandchild).
            start_new_session=True,
        )
        REAPER.watch(self.proc.pid)
        assert self.proc.stdout is not None
        self._reader = threading.Thread(
            target=self._copy_output, args=(self.proc.stdout,), daemon=True
        )
        self._reader.start()

    def _copy_output(self, stream: IO[bytes]) -> None:
        with open(self.log_path, "ab") as log:
            for line in iter(stream.readline, b""):
                log.write(line)
                log.flush()
                if self.echo:
                    sys.stderr.write(f"[{self.name}] {line.decode(errors='replace')}")

    def wait_ready(self, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited early; see {self.log_path}:\n{self.tail()}")
            with contextlib.suppress(OSError):
                if check():
                    return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready in {timeout:.0f}s; see {self.log_path}")

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM to the group, SIGKILL to what is left of it after `timeout` seconds."""
        stop_all([self], timeout)

    def _finish(self, deadline: float) -> None:
        """After the SIGTERM: wait for the group until `deadline`, then SIGKILL the rest."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        # The group may outlive its leader (the emulator's JVM): wait for all of it.
        while time.monotonic() < deadline and (self.proc.poll() is None or group_alive(pgid)):
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        REAPER.forget(pgid)
        if self._reader is not None:
            self._reader.join(2)

    def kill(self) -> None:
        """Die at whatever line it is on: SIGKILL to the whole group."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_all(procs: Iterable[ManagedProcess | None], timeout: float = 5.0) -> None:
    """stop() for several at once: each takes one to two seconds to exit on its SIGTERM, and
    one after another a stack's seven took 13 s; at once, the slowest one's time."""
    live = [p for p in procs if p is not None and p.proc is not None]
    for proc in live:
        proc.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in live:
        proc._finish(deadline)
