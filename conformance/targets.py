"""The servers under test, each as gunicorn's gevent worker runs it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from devstack.processes import ManagedProcess, free_port, http_get

ROOT = Path(__file__).resolve().parent.parent
EDGE_DIR = ROOT / "services" / "ws_edge"
FUNCTION_DIR = ROOT / "services" / "agent_fn"


@dataclass
class Target:
    agent: str
    process: ManagedProcess
    port: int

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/echo"

    def start(self) -> None:
        self.process.start()
        self.process.wait_ready(
            lambda: http_get(f"http://127.0.0.1:{self.port}/healthz")[0] == 200, 60
        )

    def stop(self) -> None:
        self.process.stop()


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(EDGE_DIR), str(FUNCTION_DIR)])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def edge(log_dir: Path) -> Target:
    """The edge itself, with its gunicorn config and the test-only echo route turned on.

    The echo route touches neither Pub/Sub nor Firestore; their clients are made lazily, so the
    emulator addresses below are never dialled (they only keep any client off real Google).
    """
    port = free_port()
    dead = f"127.0.0.1:{free_port()}"
    env = _env(
        {
            "PORT": str(port),
            "DEPLOYCHAT_ECHO_ROUTE": "true",
            "DEPLOYCHAT_PROJECT_ID": "demo-conformance",
            "GOOGLE_CLOUD_PROJECT": "demo-conformance",
            "PUBSUB_EMULATOR_HOST": dead,
            "FIRESTORE_EMULATOR_HOST": dead,
            "FIREBASE_AUTH_EMULATOR_HOST": dead,
        }
    )
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        str(EDGE_DIR / "gunicorn.conf.py"),
        "edge.wsgi:app",
    ]
    process = ManagedProcess("ws_edge", argv, env=env, cwd=EDGE_DIR, log_path=log_dir / "edge.log")
    return Target("deploychat-edge", process, port)


def flask_sock(log_dir: Path) -> Target:
    """The reference: a plain flask-sock echo app (conformance/echo_app.py), same frame limit."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--worker-class",
        "gevent",
        "--workers",
        "1",
        "--bind",
        f"127.0.0.1:{port}",
        "conformance.echo_app:app",
    ]
    process = ManagedProcess(
        "flask-sock-echo", argv, env=_env({}), cwd=ROOT, log_path=log_dir / "flask-sock.log"
    )
    return Target("flask-sock", process, port)


TARGETS = {"edge": edge, "flask-sock": flask_sock}
