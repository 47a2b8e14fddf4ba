"""The whole system on one machine: both emulators, the Pub/Sub wiring, the function, the edge.

`make dev` runs it in the foreground; the integration tests and the benchmarks start the same
stack from their fixtures, so all three exercise one set-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from google.api_core import exceptions as gexc
from google.protobuf import duration_pb2

from .emulators import AuthEmulator, Emulator
from .processes import ManagedProcess, free_port, http_get, stop_all
from .scheduler import Scheduler
from .stack_config import EDGE_DIR, FUNCTION_DIR, ROOT, StackConfig

__all__ = ["EDGE_DIR", "FUNCTION_DIR", "ROOT", "AuthEmulator", "Emulator", "Stack", "StackConfig"]

EMULATOR_DEAD_LETTER_ATTEMPTS = 100
MODEL_KEYS = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "DEPLOYCHAT_GEMINI_API_KEY")
# A process started, how to tell it is ready, and how long it may take.
Ready = tuple[ManagedProcess, Callable[[], bool], float]


class Stack:
    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.pubsub: Emulator | None = None
        self.firestore: Emulator | None = None
        self.auth: AuthEmulator | None = None
        self.function: ManagedProcess | None = None
        self.builds_function: ManagedProcess | None = None
        self.edge: ManagedProcess | None = None
        self.function_port = free_port()
        self.builds_function_port = free_port()
        # Instance i of each; the single-instance names above are instance 0.
        n_functions, n_edges = max(1, self.config.functions), max(1, self.config.edges)
        self.function_ports = [self.function_port] + [free_port() for _ in range(n_functions - 1)]
        self.functions: list[ManagedProcess | None] = [None] * n_functions
        self.edge_ports = [self.config.edge_port] + [free_port() for _ in range(n_edges - 1)]
        self.edges: list[ManagedProcess | None] = [None] * n_edges
        self.balancer: ManagedProcess | None = None
        self.balancer_port = free_port() if n_functions > 1 or self.config.balancer else None
        self.sweeper: ManagedProcess | None = None
        self.sweeper_port = free_port()
        self._scheduler: Scheduler | None = None

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

    def reset_firestore(self, timeout: float = 10.0) -> None:
        assert self.firestore
        url = (
            f"http://{self.firestore.host}/emulator/v1/projects/{self.config.project}"
            "/databases/(default)/documents"
        )
        # The emulator answers 409 while a transaction (a turn still finishing) holds a lock;
        # that clears within the lock timeout, so try again until the deadline.
        deadline = time.monotonic() + timeout
        while True:
            request = urllib.request.Request(url, method="DELETE")
            try:
                urllib.request.urlopen(request, timeout=timeout).close()
                return
            except urllib.error.HTTPError as exc:
                if exc.code != 409 or time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    # ---------------------------------------------------------------- Pub/Sub wiring

    @property
    def push_endpoint(self) -> str:
        # The topic stays in the path: functions-framework turns a raw push body into a
        # CloudEvent and takes the event's source from it.
        port = self.balancer_port or self.function_port
        return f"http://127.0.0.1:{port}/projects/{self.config.project}/topics/{self.config.topic}"

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
                # Not the agent's own limit (it counts its attempts in Firestore and closes a
                # turn with an error on the last one), but Pub/Sub's most: Pub/Sub also counts
                # pushes refused while an instance restarts, and the emulator's push loop dies
                # for good (a NullPointerException in MessageBacklog.pull, seen here) when it
                # dead-letters a message, after which it pushes nothing at all.
                dead_letter_topic=dead,
                max_delivery_attempts=EMULATOR_DEAD_LETTER_ATTEMPTS,
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
        # Cloud Build's notifications: unordered and at least once, as handle_build_event expects.
        builds = publisher.topic_path(cfg.project, cfg.builds_topic)
        with contextlib.suppress(gexc.AlreadyExists):
            publisher.create_topic(name=builds)
        with contextlib.suppress(gexc.AlreadyExists):
            subscriber.create_subscription(
                request=types.Subscription(
                    name=subscriber.subscription_path(cfg.project, f"{cfg.builds_topic}-to-agent"),
                    topic=builds,
                    push_config=types.PushConfig(
                        push_endpoint=f"http://127.0.0.1:{self.builds_function_port}"
                        f"/projects/{cfg.project}/topics/{cfg.builds_topic}"
                    ),
                    ack_deadline_seconds=60,
                    retry_policy=types.RetryPolicy(
                        minimum_backoff=duration_pb2.Duration(seconds=cfg.min_backoff_s),
                        maximum_backoff=duration_pb2.Duration(seconds=cfg.max_backoff_s),
                    ),
                )
            )

    # ---------------------------------------------------------------- services

    def service_env(self, extra: dict[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.emulator_env())
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(EDGE_DIR), str(FUNCTION_DIR)])
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra)
        return env

    def function_env(self) -> dict[str, str]:
        env = self.service_env({})
        env["DEPLOYCHAT_MAX_DELIVERY_ATTEMPTS"] = str(self.config.max_delivery_attempts)
        # "deploy ./examples/hello-flask locally" means the repository's examples.
        env["DEPLOYCHAT_SOURCE_ROOT"] = str(ROOT)
        # Off by default (secure by default); on here, for `make dev` and the tests.
        env.setdefault("DEPLOYCHAT_LOCAL_SOURCES", "true")
        env.setdefault("DEPLOYCHAT_LOCAL_DEPLOY", "true")
        state = self.config.log_dir.parent
        env["DEPLOYCHAT_WORK_DIR"] = str(state / "work")
        env["DEPLOYCHAT_DEPLOY_STATE_DIR"] = str(state / "deployments")
        # The sweeper publishes stuck turns again to the stack's topic.
        env["DEPLOYCHAT_TURNS_TOPIC"] = self.config.topic
        env.update(self.config.function_env)
        return env

    def _function_process(
        self, name: str, target: str, signature: str, port: int
    ) -> ManagedProcess:
        return ManagedProcess(
            name,
            [
                sys.executable,
                "-m",
                "functions_framework",
                f"--target={target}",
                f"--source={FUNCTION_DIR / 'main.py'}",
                f"--signature-type={signature}",
                "--host=127.0.0.1",
                f"--port={port}",
            ],
            env=self.function_env(),
            cwd=FUNCTION_DIR,
            log_path=self.config.log_dir / f"{name}.log",
            echo=self.config.echo,
        )

    def start_function(self, index: int = 0) -> None:
        """Start function instance `index` (instance 0 also starts the builds entry point)."""
        await_ready(self._launch_function(index))

    def _launch_function(self, index: int) -> list[Ready]:
        port = self.function_ports[index]
        name = "agent_fn" if index == 0 else f"agent_fn-{index}"
        proc = self._function_process(name, "handle_turn", "cloudevent", port)
        self.functions[index] = proc
        if index == 0:
            self.function = proc
        proc.start()
        waits: list[Ready] = [(proc, _answers(port), 60)]
        if index != 0 or (self.builds_function is not None and self.builds_function.alive):
            return waits
        env = self.function_env()
        # The function's second entry point, as its own process: on Google Cloud it is a
        # function of its own too, from the same source.
        self.builds_function = ManagedProcess(
            "agent_fn_builds",
            [
                sys.executable,
                "-m",
                "functions_framework",
                "--target=handle_build_event",
                f"--source={FUNCTION_DIR / 'main.py'}",
                "--signature-type=cloudevent",
                "--host=127.0.0.1",
                f"--port={self.builds_function_port}",
            ],
            env=env,
            cwd=FUNCTION_DIR,
            log_path=self.config.log_dir / "agent_fn_builds.log",
            echo=self.config.echo,
        )
        self.builds_function.start()
        return [*waits, (self.builds_function, _answers(self.builds_function_port), 60)]

    def restart_function(self, index: int | None = None) -> None:
        """Restart one function instance, or (None) all of them, e.g. to apply new settings."""
        if index is not None:
            stop_all([self.functions[index]])
            self.start_function(index)
            return
        sweeper = self.sweeper is not None
        # All at once: one after another, four processes' exits and starts took 18 s.
        stop_all([self.builds_function, *self.functions, self.sweeper])
        waits = [w for i in range(len(self.functions)) for w in self._launch_function(i)]
        await_ready([*waits, *(self._launch_sweeper() if sweeper else [])])

    def start_balancer(self) -> None:
        if self.balancer_port is None:
            return
        upstreams = [f"--upstream=127.0.0.1:{port}" for port in self.function_ports]
        self.balancer = ManagedProcess(
            "balancer",
            [sys.executable, "-m", "devstack.balancer", f"--port={self.balancer_port}", *upstreams],
            env=self.service_env({}),
            cwd=ROOT,
            log_path=self.config.log_dir / "balancer.log",
            echo=self.config.echo,
        )
        self.balancer.start()
        port = self.balancer_port
        self.balancer.wait_ready(
            lambda: http_get(f"http://127.0.0.1:{port}/_balancer/stats")[0] == 200, 30
        )

    def balancer_drop(self, turn_id: str) -> None:
        """From now on the balancer acknowledges redeliveries of this turn without passing them."""
        assert self.balancer_port is not None, "the stack runs no balancer"
        url = f"http://127.0.0.1:{self.balancer_port}/_balancer/drop?turn_id={turn_id}"
        urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10).close()

    def start_sweeper(self) -> None:
        await_ready(self._launch_sweeper())

    def _launch_sweeper(self) -> list[Ready]:
        """The sweeper, and Cloud Scheduler's calls to it (which miss while it starts)."""
        if self.config.sweep_interval_s is None:
            return []
        port = self.sweeper_port
        self.sweeper = self._function_process("sweeper", "sweep_turns", "http", port)
        self.sweeper.start()
        if self._scheduler is None:
            self._scheduler = Scheduler(f"http://127.0.0.1:{port}/", self.config.sweep_interval_s)
            self._scheduler.start()
        return [(self.sweeper, _answers(port), 60)]

    def sweep(self) -> dict[str, object]:
        """One sweep now (as Cloud Scheduler's call would), its report."""
        url = f"http://127.0.0.1:{self.sweeper_port}/"
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=60) as r:
            report: dict[str, object] = json.loads(r.read())
            return report

    def start_edge(self, index: int = 0) -> None:
        await_ready(self._launch_edge(index))

    def _launch_edge(self, index: int) -> list[Ready]:
        port = self.edge_ports[index]
        env = self.service_env({})
        env["PORT"] = str(port)
        env["DEPLOYCHAT_TURNS_TOPIC"] = self.config.topic
        # The page shows which model answers; without a key the agent runs offline.
        function_env = {**os.environ, **self.config.function_env}
        if any(function_env.get(k) for k in MODEL_KEYS):
            env["DEPLOYCHAT_AGENT_MODEL"] = function_env.get("DEPLOYCHAT_MODEL", "gemini-2.5-flash")
        env.update(self.config.edge_env)
        name = "ws_edge" if index == 0 else f"ws_edge-{index}"
        edge = ManagedProcess(
            name,
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
            log_path=self.config.log_dir / f"{name}.log",
            echo=self.config.echo,
        )
        self.edges[index] = edge
        if index == 0:
            self.edge = edge
        edge.start()
        return [(edge, lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200, 60)]

    def restart_edge(self, index: int | None = None) -> None:
        """Restart one edge, or (None) all of them (at once)."""
        which = range(len(self.edges)) if index is None else [index]
        stop_all([self.edges[i] for i in which])
        await_ready([w for i in which for w in self._launch_edge(i)])

    @property
    def ws_urls(self) -> list[str]:
        return [f"ws://127.0.0.1:{port}/ws/chat" for port in self.edge_ports]

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.config.edge_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.config.edge_port}/ws/chat"

    def start(self) -> None:
        try:
            self.start_emulators()
            self.start_balancer()
            self.setup_pubsub()
            # Started at once and then waited for: each spends seconds importing.
            waits = [w for i in range(len(self.functions)) for w in self._launch_function(i)]
            waits += self._launch_sweeper()
            waits += [w for i in range(len(self.edges)) for w in self._launch_edge(i)]
            await_ready(waits)
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
        if self._scheduler is not None:
            self._scheduler.stop()
        # The services at once, then the emulators they talk to, at once.
        stop_all([*self.edges, *self.functions, self.builds_function, self.sweeper, self.balancer])
        stop_all(e.process for e in (self.pubsub, self.firestore, self.auth) if e is not None)


def await_ready(waits: list[Ready]) -> None:
    """Until every process started passes its check (each within its own timeout)."""
    for proc, check, timeout in waits:
        proc.wait_ready(check, timeout)


def _answers(port: int) -> Callable[[], bool]:
    return lambda: http_get(f"http://127.0.0.1:{port}/")[0] > 0
