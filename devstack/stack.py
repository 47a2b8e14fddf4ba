"""The whole system on one machine: both emulators, the Pub/Sub wiring, the function, the edge.

`make dev` runs it in the foreground; the integration tests and the benchmarks start the same
stack from their fixtures, so all three exercise one set-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from google.api_core import exceptions as gexc
from google.protobuf import duration_pb2

from .processes import ManagedProcess, free_port, http_get

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
    # Settings for the function and the edge (DEPLOYCHAT_* and the like).
    function_env: dict[str, str] = field(default_factory=dict)
    edge_env: dict[str, str] = field(default_factory=dict)


class Emulator:
    def __init__(self, kind: str, config: StackConfig) -> None:
        self.kind = kind
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        gcloud = shutil.which("gcloud") or "gcloud"
        if kind == "pubsub":
            argv = [
                gcloud,
                "beta",
                "emulators",
                "pubsub",
                "start",
                f"--host-port={self.host}",
                f"--project={config.project}",
            ]
        else:
            argv = [gcloud, "emulators", "firestore", "start", f"--host-port={self.host}"]
        self.process = ManagedProcess(
            f"{kind}-emulator",
            argv,
            env=dict(os.environ),
            log_path=config.log_dir / f"{kind}-emulator.log",
        )

    def start(self) -> None:
        self.process.start()

    def wait_ready(self) -> None:
        self.process.wait_ready(
            lambda: (
                http_get(f"http://{self.host}/") == (200, "Ok\n")
                or http_get(f"http://{self.host}/")[1].strip() == "Ok"
            ),
            90,
        )

    def stop(self) -> None:
        self.process.stop()


class AuthEmulator:
    """The Firebase Authentication emulator (firebase-tools from npm), on ports of its own.

    Its config is written per stack, so stacks of parallel test runs never share a port; the
    UI is off (firebase-tools would download it at run time).
    """

    def __init__(self, config: StackConfig) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        state = config.log_dir / "firebase"
        state.mkdir(parents=True, exist_ok=True)
        firebase_json = state / "firebase.json"
        firebase_json.write_text(
            json.dumps(
                {
                    "emulators": {
                        "auth": {"host": "127.0.0.1", "port": self.port},
                        "hub": {"host": "127.0.0.1", "port": free_port()},
                        "logging": {"host": "127.0.0.1", "port": free_port()},
                        "ui": {"enabled": False},
                        "singleProjectMode": True,
                    }
                }
            )
        )
        env = dict(os.environ)
        # firebase-tools asks nobody anything, and reports nothing home, in a test run.
        env.update({"CI": "true", "FIREBASE_CLI_DISABLE_UPDATE_CHECK": "true"})
        self.process = ManagedProcess(
            "auth-emulator",
            [
                str(firebase_cli()),
                "emulators:start",
                "--only",
                "auth",
                "--project",
                config.project,
                "--config",
                str(firebase_json),
            ],
            env=env,
            cwd=state,
            log_path=config.log_dir / "auth-emulator.log",
        )

    def start(self) -> None:
        self.process.start()

    def wait_ready(self) -> None:
        self.process.wait_ready(lambda: http_get(f"http://{self.host}/")[0] == 200, 90)

    def reset(self, project: str) -> None:
        url = f"http://{self.host}/emulator/v1/projects/{project}/accounts"
        urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=10).close()

    def stop(self) -> None:
        self.process.stop()


def firebase_cli() -> Path:
    """firebase-tools, installed from package-lock.json by `npm ci` when missing."""
    cli = ROOT / "node_modules" / ".bin" / "firebase"
    if not cli.exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT, check=True
        )
    return cli


class Stack:
    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.pubsub: Emulator | None = None
        self.firestore: Emulator | None = None
        self.auth: AuthEmulator | None = None
        self.function: ManagedProcess | None = None
        self.edge: ManagedProcess | None = None
        self.function_port = free_port()

    # ---------------------------------------------------------------- emulators

    def start_emulators(self) -> None:
        self.pubsub = Emulator("pubsub", self.config)
        self.firestore = Emulator("firestore", self.config)
        self.auth = AuthEmulator(self.config)
        self.pubsub.start()
        self.firestore.start()
        self.auth.start()
        self.pubsub.wait_ready()
        self.firestore.wait_ready()
        self.auth.wait_ready()
        # This process talks to them too (Pub/Sub set-up, tests reading Firestore).
        os.environ.update(self.emulator_env())

    def emulator_env(self) -> dict[str, str]:
        assert self.pubsub and self.firestore and self.auth
        return {
            "PUBSUB_EMULATOR_HOST": self.pubsub.host,
            "FIRESTORE_EMULATOR_HOST": self.firestore.host,
            "FIREBASE_AUTH_EMULATOR_HOST": self.auth.host,
            "GOOGLE_CLOUD_PROJECT": self.config.project,
            "DEPLOYCHAT_PROJECT_ID": self.config.project,
        }

    def reset_firestore(self) -> None:
        assert self.firestore
        url = (
            f"http://{self.firestore.host}/emulator/v1/projects/{self.config.project}"
            "/databases/(default)/documents"
        )
        urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=10).close()

    # ---------------------------------------------------------------- Pub/Sub wiring

    @property
    def push_endpoint(self) -> str:
        # The topic stays in the path: functions-framework turns a raw push body into a
        # CloudEvent and takes the event's source from it.
        return (
            f"http://127.0.0.1:{self.function_port}/projects/{self.config.project}"
            f"/topics/{self.config.topic}"
        )

    def setup_pubsub(self) -> None:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]
        from google.pubsub_v1 import types

        cfg = self.config
        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
        topic = publisher.topic_path(cfg.project, cfg.topic)
        dead = publisher.topic_path(cfg.project, f"{cfg.topic}-dead-letter")
        for name in (topic, dead):
            with contextlib.suppress(gexc.AlreadyExists):
                publisher.create_topic(name=name)
        subscription = types.Subscription(
            name=subscriber.subscription_path(cfg.project, f"{cfg.topic}-to-agent"),
            topic=topic,
            push_config=types.PushConfig(push_endpoint=self.push_endpoint),
            ack_deadline_seconds=cfg.ack_deadline_s,
            enable_message_ordering=True,
            retry_policy=types.RetryPolicy(
                minimum_backoff=duration_pb2.Duration(seconds=cfg.min_backoff_s),
                maximum_backoff=duration_pb2.Duration(seconds=cfg.max_backoff_s),
            ),
            dead_letter_policy=types.DeadLetterPolicy(
                dead_letter_topic=dead, max_delivery_attempts=cfg.max_delivery_attempts
            ),
        )
        with contextlib.suppress(gexc.AlreadyExists):
            subscriber.create_subscription(request=subscription)
        # Dead letters are kept for inspection rather than dropped.
        with contextlib.suppress(gexc.AlreadyExists):
            subscriber.create_subscription(
                name=subscriber.subscription_path(cfg.project, f"{cfg.topic}-dead-letter-hold"),
                topic=dead,
            )

    # ---------------------------------------------------------------- services

    def service_env(self, extra: dict[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.emulator_env())
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(EDGE_DIR), str(FUNCTION_DIR)])
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra)
        return env

    def start_function(self) -> None:
        env = self.service_env({})
        env["DEPLOYCHAT_MAX_DELIVERY_ATTEMPTS"] = str(self.config.max_delivery_attempts)
        # "deploy ./examples/hello-flask locally" means the repository's examples.
        env["DEPLOYCHAT_SOURCE_ROOT"] = str(ROOT)
        state = self.config.log_dir.parent
        env["DEPLOYCHAT_WORK_DIR"] = str(state / "work")
        env["DEPLOYCHAT_DEPLOY_STATE_DIR"] = str(state / "deployments")
        env.update(self.config.function_env)
        self.function = ManagedProcess(
            "agent_fn",
            [
                sys.executable,
                "-m",
                "functions_framework",
                "--target=handle_turn",
                f"--source={FUNCTION_DIR / 'main.py'}",
                "--signature-type=cloudevent",
                "--host=127.0.0.1",
                f"--port={self.function_port}",
            ],
            env=env,
            cwd=FUNCTION_DIR,
            log_path=self.config.log_dir / "agent_fn.log",
            echo=self.config.echo,
        )
        self.function.start()
        self.function.wait_ready(
            lambda: http_get(f"http://127.0.0.1:{self.function_port}/")[0] > 0, 60
        )

    def restart_function(self) -> None:
        if self.function is not None:
            self.function.stop()
        self.start_function()

    def start_edge(self) -> None:
        env = self.service_env(self.config.edge_env)
        env["PORT"] = str(self.config.edge_port)
        env["DEPLOYCHAT_TURNS_TOPIC"] = self.config.topic
        self.edge = ManagedProcess(
            "ws_edge",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                str(EDGE_DIR / "gunicorn.conf.py"),
                "edge.wsgi:app",
            ],
            env=env,
            cwd=EDGE_DIR,
            log_path=self.config.log_dir / "ws_edge.log",
            echo=self.config.echo,
        )
        self.edge.start()
        self.edge.wait_ready(
            lambda: http_get(f"http://127.0.0.1:{self.config.edge_port}/healthz")[0] == 200, 60
        )

    def restart_edge(self) -> None:
        if self.edge is not None:
            self.edge.stop()
        self.start_edge()

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.config.edge_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.config.edge_port}/ws/chat"

    def start(self) -> None:
        try:
            self.start_emulators()
            self.setup_pubsub()
            self.start_function()
            self.start_edge()
        except BaseException:
            self.stop()
            raise

    def stop_local_deployments(self) -> int:
        """Stop the apps the agent deployed locally; they outlive turns, not the stack."""
        from google.cloud import firestore

        from agent.tools import stop_local

        db = firestore.Client(project=self.config.project)
        stopped = 0
        for record in db.collection_group("deployments").stream():
            pid = (record.to_dict() or {}).get("pid")
            if isinstance(pid, int) and stop_local(pid):
                stopped += 1
        return stopped

    def stop(self) -> None:
        if self.firestore is not None and self.firestore.process.alive:
            try:
                self.stop_local_deployments()
            except Exception as exc:  # best effort: the stack must stop regardless
                print(f"could not stop local deployments: {exc}", file=sys.stderr)
        for proc in (self.edge, self.function):
            if proc is not None:
                proc.stop()
        for emulator in (self.pubsub, self.firestore, self.auth):
            if emulator is not None:
                emulator.stop()
