"""Where the stack's code lives, and what one stack is made of (ports, settings, instances)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EDGE_DIR = ROOT / "services" / "ws_edge"
FUNCTION_DIR = ROOT / "services" / "agent_fn"


@dataclass
class StackConfig:
    # A `demo-` project: the Firebase Auth emulator needs no login for it, and its ID tokens
    # carry it as their audience, which the edge checks.
    project: str = "demo-deploychat"
    topic: str = "deploychat-turns"
    edge_port: int = 8000
    log_dir: Path = ROOT / ".devstack" / "logs"
    echo: bool = False
    # Pub/Sub's redelivery backoff; production keeps the default 10 s, tests shorten it.
    min_backoff_s: int = 10
    max_backoff_s: int = 600
    max_delivery_attempts: int = 5
    ack_deadline_s: int = 600
    # Cloud Build's notifications, pushed to the function's handle_build_event (locally the
    # fake Cloud Build of the tests publishes there).
    builds_topic: str = "cloud-builds"
    # Settings for the function and the edge (DEPLOYCHAT_* and the like).
    function_env: dict[str, str] = field(default_factory=dict)
    edge_env: dict[str, str] = field(default_factory=dict)
    # `make dev` pins the Auth emulator's port (127.0.0.1:9099, the emulator's default) and
    # keeps the emulators' data in a folder across restarts; tests take free ports, no data.
    auth_port: int | None = None
    data_dir: Path | None = None
    # Several instances, as production runs: N edges on ports of their own (the first on
    # edge_port) and M function instances behind one push endpoint (devstack/balancer.py).
    edges: int = 1
    functions: int = 1
    # The balancer even for one function (tests that need its fault hooks).
    balancer: bool = False
    # The stuck-turn sweeper (the `sweep_turns` entry point), called this often; None: not run.
    sweep_interval_s: float | None = 10.0
