"""`make dev`: the whole stack in the foreground until Ctrl-C.

Like the platform it imitates: a crashed edge or function is started again (with backoff) while
the rest keeps running; the emulators' data is kept in `.devstack/data/` across restarts
(`make dev-reset` wipes it); Ctrl-C or SIGTERM stops everything within 10 s; and if this process
is killed outright, the reaper (devstack/processes.py) takes its services down with it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import persist
from .processes import ManagedProcess, http_get
from .stack import ROOT, Stack, StackConfig

AUTOSAVE_S = 30.0
STOP_BUDGET_S = 9.0


def say(text: str) -> None:
    print(f"devstack: {text}", file=sys.stderr, flush=True)


class Keeper:
    """Starts one service again when it dies: after 1 s, then 2, 4, ... up to 30 s; the delay
    starts over once it has stayed up for a minute."""

    def __init__(self, get: Callable[[], ManagedProcess | None], ready: Callable[[], bool]) -> None:
        self.get = get
        self.ready = ready
        self.failures = 0
        self.restart_at: float | None = None
        self.started_at = time.monotonic()
        self.waiting_ready = False

    def poll(self, now: float) -> None:
        proc = self.get()
        if proc is None:
            return
        if proc.alive:
            if self.waiting_ready and self.ready():
                self.waiting_ready = False
                say(f"{proc.name} is back and ready")
            if self.failures and now - self.started_at > 60:
                self.failures = 0
            return
        if self.restart_at is None:
            self.failures += 1
            delay = min(30.0, 2.0 ** (self.failures - 1))
            say(
                f"{proc.name} exited (code {proc.returncode}); restarting it in {delay:.0f} s "
                f"(the rest keeps running; log: {proc.log_path})"
            )
            self.restart_at = now + delay
        elif now >= self.restart_at:
            self.restart_at = None
            self.started_at = now
            self.waiting_ready = True
            proc.start()
            say(f"{proc.name} restarted (pid {proc.proc.pid if proc.proc else '?'})")


def instance(
    instances: list[ManagedProcess | None], index: int
) -> Callable[[], ManagedProcess | None]:
    """Instance `index` as the stack holds it now (a restart may put a new process there)."""
    return lambda: instances[index]


def quick_ready(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return http_get(url, timeout=0.5)[0] == 200
        except OSError:
            return False

    return check


def all_processes(stack: Stack) -> list[ManagedProcess]:
    """Every process the stack holds (services, instances, emulators), whatever it names them."""
    found: dict[int, ManagedProcess] = {}
    for value in vars(stack).values():
        for item in value if isinstance(value, list) else [value]:
            proc = getattr(item, "process", item)
            if isinstance(proc, ManagedProcess):
                found[id(proc)] = proc
    return list(found.values())


def shut_down(stack: Stack, data_dir: Path | None) -> None:
    """Save, then stop every service at once (not one after another): all within the budget."""
    started = time.monotonic()
    if data_dir is not None:
        try:
            persist.save(stack, data_dir, timeout=3.0)
            say(f"saved the emulators' data in {data_dir}")
        except Exception as exc:  # the stack must stop regardless
            say(f"could not save the emulators' data: {exc}")
    # Local deployments are stopped by a Firestore query: bounded, in a thread.
    local = threading.Thread(target=stop_local, args=(stack,), daemon=True)
    local.start()
    local.join(2.0)
    # The data is saved: what has not gone 3 s after SIGTERM is killed.
    left = min(3.0, max(1.0, STOP_BUDGET_S - (time.monotonic() - started) - 2.0))
    stoppers = [
        threading.Thread(target=p.stop, kwargs={"timeout": left}, daemon=True)
        for p in all_processes(stack)
    ]
    for t in stoppers:
        t.start()
    for t in stoppers:
        t.join(left + 2.0)
    # The stack's own stop for anything else it keeps (threads, schedulers); all is dead by now.
    final = threading.Thread(target=stack.stop, daemon=True)
    final.start()
    final.join(2.0)
    say(f"stopped in {time.monotonic() - started:.1f} s")


def stop_local(stack: Stack) -> None:
    if stack.firestore is None or not stack.firestore.process.alive:
        return
    if "FIRESTORE_EMULATOR_HOST" not in os.environ:
        return  # never connected to it: nothing was deployed
    try:
        stack.stop_local_deployments()
    except Exception as exc:
        say(f"could not stop local deployments: {exc}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--auth-port", type=int, default=9099, help="the Auth emulator's port")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=ROOT / ".devstack" / "data",
        help="where the emulators' data is kept across restarts",
    )
    parser.add_argument("--no-persist", action="store_true", help="start empty, keep nothing")
    parser.add_argument("--log-dir", type=Path, default=ROOT / ".devstack" / "logs")
    parser.add_argument("--quiet", action="store_true", help="do not echo the services' logs")
    parser.add_argument(
        "--edges",
        type=int,
        default=1,
        help="edge instances (the first on --port, the others on "
        "free ports), as Cloud Run scales out",
    )
    parser.add_argument(
        "--functions",
        type=int,
        default=1,
        help="function instances (more than 1: behind the local balancer, devstack/balancer.py)",
    )
    args = parser.parse_args()
    if args.edges < 1 or args.functions < 1:
        parser.error("--edges and --functions are at least 1")
    data_dir: Path | None = None if args.no_persist else args.data_dir.resolve()

    stack = Stack(
        StackConfig(
            edge_port=args.port,
            echo=not args.quiet,
            auth_port=args.auth_port,
            data_dir=data_dir,
            log_dir=args.log_dir.resolve(),
            edges=args.edges,
            functions=args.functions,
        )
    )
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        if stop.is_set():  # a second Ctrl-C: no more waiting
            for proc in all_processes(stack):
                proc.signal(signal.SIGKILL)
            os._exit(130)
        stop.set()

    # Explicitly: a process started in the background inherits SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    restored = data_dir is not None and (data_dir / "firestore").exists()
    say("starting the emulators, the agent function and the edge ...")
    if restored:
        say(f"restoring the data kept in {data_dir} (make dev-reset starts empty)")

    # Started in a thread, so Ctrl-C is answered at once even while the emulators boot.
    failed: list[BaseException] = []

    def start() -> None:
        try:
            stack.start()
        except BaseException as exc:
            failed.append(exc)

    starter = threading.Thread(target=start, daemon=True)
    starter.start()
    while starter.is_alive() and not stop.wait(0.2):
        pass
    if stop.is_set() or failed:
        if failed and not stop.is_set():
            say(f"could not start: {failed[0]}")
        shut_down(stack, None)
        starter.join(2.0)
        shut_down(stack, None)  # anything the starting thread made after the first pass
        return 1 if failed and not stop.is_set() else 0

    assert stack.pubsub and stack.firestore and stack.auth
    keys = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "DEPLOYCHAT_GEMINI_API_KEY")
    has_key = any(os.environ.get(k) for k in keys)
    model = "Gemini" if has_key else "offline mode (no GEMINI_API_KEY)"
    kept = f"{data_dir}   (make dev-reset wipes it)" if data_dir else "nothing (--no-persist)"
    more = ""
    if len(stack.edge_ports) > 1:
        more += "\n  more edges       " + "  ".join(stack.ws_urls[1:])
    if len(stack.function_ports) > 1:
        ports = ", ".join(str(p) for p in stack.function_ports)
        more += f"\n  function ports   {ports}   (behind the balancer on {stack.balancer_port})"
    print(
        f"""
deploychat is running
  chat page        {stack.edge_url}/   (http://localhost:{args.port})
  WebSocket        ws://localhost:{args.port}/ws/chat
  Pub/Sub emulator {stack.pubsub.host}   Firestore emulator {stack.firestore.host}
  Auth emulator    http://{stack.auth.host}   (the page signs in as a guest by itself)
  agent function   http://127.0.0.1:{stack.function_port}   model: {model}{more}
  data kept in     {kept}
  logs             {stack.config.log_dir}
Ctrl-C stops everything.""",
        file=sys.stderr,
        flush=True,
    )
    keepers = [
        *(
            Keeper(instance(stack.edges, i), quick_ready(f"http://127.0.0.1:{port}/healthz"))
            for i, port in enumerate(stack.edge_ports)
        ),
        *(
            Keeper(instance(stack.functions, i), quick_ready(f"http://127.0.0.1:{port}/"))
            for i, port in enumerate(stack.function_ports)
        ),
    ]
    next_save = time.monotonic() + AUTOSAVE_S
    try:
        while not stop.wait(0.5):
            now = time.monotonic()
            for keeper in keepers:
                keeper.poll(now)
            for emulator in (stack.pubsub, stack.firestore, stack.auth):
                if not emulator.process.alive:
                    say(f"{emulator.process.name} exited; see {emulator.process.log_path}")
                    stop.set()
            # Saved as it goes too: a stack that is killed keeps all but the last seconds.
            if data_dir is not None and now >= next_save and not stop.is_set():
                next_save = now + AUTOSAVE_S
                try:
                    persist.save(stack, data_dir, timeout=3.0)
                except Exception as exc:
                    say(f"could not save the emulators' data: {exc}")
    finally:
        print("", file=sys.stderr)
        say("stopping ...")
        shut_down(stack, data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
