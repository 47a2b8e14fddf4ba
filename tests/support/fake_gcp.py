"""A local fake of the Google Cloud REST calls the deploy tools make, for the real clients.

Serves Cloud Build v1 (create, get, list, cancel a build; get its operation) and the Cloud
Storage JSON API (media upload, bucket creation) on 127.0.0.1. Point
`cloudbuild_v1.CloudBuildClient` at `fake.url` with `transport="rest"`, `AnonymousCredentials()`
and `client_options={"api_endpoint": fake.url}` (agent.tools.cloud_run_deploy.build_client).
Cloud Run itself is deployed by the build's last step (`gcloud run deploy`), not by an API call.

Without notifications, state advances on each poll, like the real service: a build is QUEUED on
the first GET, then WORKING through its steps, then SUCCESS (or FAILURE with `fail_build`).
Everything received is recorded for assertions.

Build notifications, as Cloud Build sends them to its `cloud-builds` topic: with `notify_topic`
(`projects/<p>/topics/<t>`, on the Pub/Sub emulator) every state a build enters (QUEUED, WORKING
at each step, the end) is published there, the data the Build resource's JSON and the attributes
`buildId` and `status`. Builds then move only by `advance(build_id)` (a test decides when), or
every `auto_advance_s` by themselves. With `hold_notifications` they are kept in `held` instead,
for a test to publish (`publish`) in any order, any number of times. A build's deploy step
(`gcloud run deploy <service>`) "writes" the service's URL to its output, as the real step
does through $BUILDER_OUTPUT. Builds are listed by tag (`tags="..."` filters).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BUILD_METADATA_TYPE = "type.googleapis.com/google.devtools.cloudbuild.v1.BuildOperationMetadata"
BUILD_TYPE = "type.googleapis.com/google.devtools.cloudbuild.v1.Build"
FAKE_DIGEST = "sha256:" + "ab" * 32

_TERMINAL = {"SUCCESS", "FAILURE", "INTERNAL_ERROR", "TIMEOUT", "CANCELLED", "EXPIRED"}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"{}")


@dataclass
class _Build:
    project: str
    location: str
    data: dict[str, Any]
    polls: int = 0


@dataclass
class FakeGcp:
    # Cloud Build: how the build ends, and at which step a failure happens.
    fail_build: bool = False
    failing_step: int = 0
    # Buckets that exist already (others 404 on upload until created).
    buckets: set[str] = field(default_factory=set)
    # Build notifications (see the module's docstring).
    notify_topic: str | None = None
    auto_advance_s: float | None = None
    hold_notifications: bool = False
    held: list[dict[str, Any]] = field(default_factory=list)
    published: list[tuple[str, str]] = field(default_factory=list)  # (build id, status)
    # Answer the next call of a kind ("upload", "create_build", "get_build") with this (HTTP
    # status, message) instead.
    fail_next: dict[str, tuple[int, str]] = field(default_factory=dict)

    requests: list[Request] = field(default_factory=list)
    uploads: dict[tuple[str, str], bytes] = field(default_factory=dict)
    builds: dict[str, _Build] = field(default_factory=dict)
    cancelled_builds: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._publisher: Any = None
        self._stopping = threading.Event()

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeGcp:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(self.command, parts.path, parse_qs(parts.query), body)
                status, payload = fake.handle(request)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one poll
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGcp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ routing

    _ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
        ("POST", re.compile(r"^/upload/storage/v1/b/(?P<bucket>[^/]+)/o$"), "_upload"),
        ("POST", re.compile(r"^/storage/v1/b$"), "_create_bucket"),
        (
            "POST",
            re.compile(r"^/v1/projects/(?P<p>[^/]+)(?:/locations/(?P<l>[^/]+))?/builds$"),
            "_create_build",
        ),
        (
            "GET",
            re.compile(r"^/v1/projects/(?P<p>[^/]+)(?:/locations/[^/]+)?/builds$"),
            "_list_builds",
        ),
        (
            "POST",
            re.compile(
                r"^/v1/projects/(?P<p>[^/]+)(?:/locations/[^/]+)?/builds/(?P<id>[^/:]+):cancel$"
            ),
            "_cancel_build",
        ),
        (
            "GET",
            re.compile(r"^/v1/projects/(?P<p>[^/]+)(?:/locations/[^/]+)?/builds/(?P<id>[^/:]+)$"),
            "_get_build",
        ),
        ("GET", re.compile(r"^/v1/(?P<name>(?:projects/.+/)?operations/.+)$"), "_get_build_op"),
    )

    def handle(self, request: Request) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(request)
            for method, pattern, handler in self._ROUTES:
                match = pattern.match(request.path)
                if match and method == request.method:
                    result: tuple[int, Any] = getattr(self, handler)(request, **match.groupdict())
                    return result
            return _error(404, f"fake_gcp: no route for {request.method} {request.path}")

    def _injected(self, kind: str) -> tuple[int, Any] | None:
        failure = self.fail_next.pop(kind, None)
        return _error(*failure) if failure else None

    def calls(self, method: str, fragment: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and fragment in r.path]

    # ------------------------------------------------------------ Cloud Storage

    def _upload(self, request: Request, bucket: str) -> tuple[int, Any]:
        if injected := self._injected("upload"):
            return injected
        if bucket not in self.buckets:
            return _error(404, "The specified bucket does not exist.")
        name = request.query.get("name", [""])[0]
        self.uploads[(bucket, name)] = request.body
        return 200, {"bucket": bucket, "name": name, "size": str(len(request.body))}

    def _create_bucket(self, request: Request) -> tuple[int, Any]:
        name = request.json()["name"]
        if name in self.buckets:
            return _error(409, "You already own this bucket.")
        self.buckets.add(name)
        return 200, {"name": name, "projectNumber": "123"}

    # ------------------------------------------------------------ Cloud Build

    def _create_build(self, request: Request, p: str, l: str | None) -> tuple[int, Any]:  # noqa: E741
        if injected := self._injected("create_build"):
            return injected
        # The global URL with `parent` in the query string still names the build's region.
        parent = request.query.get("parent", [""])[0]
        location = l or (parent.split("/locations/")[1] if "/locations/" in parent else "global")
        build_id = str(uuid.uuid4())
        data = dict(request.json())
        data.update(
            id=build_id,
            projectId=p,
            name=f"projects/{p}/locations/{location}/builds/{build_id}",
            status="QUEUED",
            logUrl=f"https://console.cloud.google.com/cloud-build/builds;region={location}/{build_id}?project={p}",
            createTime="2025-01-01T00:00:00Z",
        )
        for step in data.get("steps", []):
            step["status"] = "QUEUED"
        # Notified builds start QUEUED; their first `advance` starts the first step.
        build = self.builds[build_id] = _Build(p, location, data, polls=1 if self._notifying else 0)
        self._changed(build)
        if self.auto_advance_s is not None:
            threading.Thread(target=self._auto, args=(build,), daemon=True).start()
        operation = f"projects/{p}/locations/{location}/operations/build-{build_id}"
        return 200, {
            "name": operation,
            "metadata": {"@type": BUILD_METADATA_TYPE, "build": data},
        }

    # ------------------------------------------------------------ notifications

    @property
    def _notifying(self) -> bool:
        return self.notify_topic is not None

    def advance(self, build_id: str) -> dict[str, Any]:
        """Move the build to its next state (notifying it); a copy of the Build as it is now."""
        with self._lock:
            build = self.builds[build_id]
            self._step(build)
            return copy.deepcopy(build.data)

    def wait_for_builds(self, count: int = 1, timeout: float = 60) -> list[str]:
        """The ids of the first `count` builds, once there are that many."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.builds) >= count:
                    return list(self.builds)[:count]
            time.sleep(0.05)
        raise TimeoutError(f"fewer than {count} builds after {timeout} s")

    def publish(self, build: dict[str, Any]) -> None:
        """Publish one notification of `build` (a Build's JSON) to `notify_topic`."""
        assert self.notify_topic, "no notify_topic"
        if self._publisher is None:
            from google.cloud import pubsub_v1  # type: ignore[attr-defined]

            self._publisher = pubsub_v1.PublisherClient()
        future = self._publisher.publish(
            self.notify_topic,
            json.dumps(build).encode(),
            buildId=build["id"],
            status=build["status"],
        )
        future.result(timeout=30)
        self.published.append((build["id"], build["status"]))

    def _changed(self, build: _Build) -> None:
        if not self._notifying:
            return
        snapshot = copy.deepcopy(build.data)
        if self.hold_notifications:
            self.held.append(snapshot)
        else:
            self.publish(snapshot)

    def _auto(self, build: _Build) -> None:
        assert self.auto_advance_s is not None
        while not self._stopping.wait(self.auto_advance_s):
            with self._lock:
                if build.data["status"] in _TERMINAL:
                    return
                self._step(build)

    def _step(self, build: _Build) -> None:
        before = (build.data["status"], [s.get("status") for s in build.data.get("steps", [])])
        self._advance(build)
        after = (build.data["status"], [s.get("status") for s in build.data.get("steps", [])])
        if after != before:
            self._changed(build)

    # ------------------------------------------------------------ build states

    def _advance(self, build: _Build) -> None:
        data = build.data
        if data["status"] in _TERMINAL:
            return
        build.polls += 1
        steps = data.get("steps", [])
        if build.polls == 1:
            data["status"] = "QUEUED"
            return
        working = build.polls - 2  # index of the step running now
        if working < len(steps):
            data["status"] = "WORKING"
            for index, step in enumerate(steps):
                step["status"] = (
                    "SUCCESS" if index < working else "WORKING" if index == working else "QUEUED"
                )
            if self.fail_build and working > self.failing_step:
                self._fail(build)
            return
        if self.fail_build:
            self._fail(build)
            return
        for step in steps:
            step["status"] = "SUCCESS"
        data["status"] = "SUCCESS"
        data["results"] = {
            "images": [{"name": image, "digest": FAKE_DIGEST} for image in data.get("images", [])],
            "buildStepOutputs": [_step_output(build, step) for step in steps],
        }

    def _fail(self, build: _Build) -> None:
        data = build.data
        steps = data.get("steps", [])
        for index, step in enumerate(steps):
            if index < self.failing_step:
                step["status"] = "SUCCESS"
            elif index == self.failing_step:
                step["status"] = "FAILURE"
            else:
                step["status"] = "QUEUED"
        data["status"] = "FAILURE"
        data["statusDetail"] = f"Build step {self.failing_step} failed"
        data["failureInfo"] = {
            "type": "USER_BUILD_STEP",
            "detail": f'Build step failure: build step {self.failing_step} "docker" failed: '
            "step exited with non-zero status: 1",
        }

    def _get_build(self, request: Request, p: str, id: str) -> tuple[int, Any]:
        if injected := self._injected("get_build"):
            return injected
        build = self.builds.get(id)
        if build is None or build.project != p:
            return _error(404, f"build {id} not found")
        if not self._notifying:
            self._advance(build)
        return 200, build.data

    def _list_builds(self, request: Request, p: str) -> tuple[int, Any]:
        wanted = re.findall(r'tags="([^"]+)"', request.query.get("filter", [""])[0])
        found = [
            b.data
            for b in reversed(list(self.builds.values()))
            if b.project == p and all(t in b.data.get("tags", []) for t in wanted)
        ]
        return 200, {"builds": found}

    def _cancel_build(self, request: Request, p: str, id: str) -> tuple[int, Any]:
        build = self.builds.get(id)
        if build is None:
            return _error(404, f"build {id} not found")
        self.cancelled_builds.append(id)
        if build.data["status"] not in _TERMINAL:
            build.data["status"] = "CANCELLED"
            for step in build.data.get("steps", []):
                if step.get("status") == "WORKING":
                    step["status"] = "CANCELLED"
            self._changed(build)
        return 200, build.data

    def _get_build_op(self, request: Request, name: str) -> tuple[int, Any]:
        build_id = name.rsplit("/", 1)[-1].removeprefix("build-")
        build = self.builds.get(build_id)
        if build is None:
            return _error(404, f"operation {name} not found")
        self._advance(build)
        done = build.data["status"] in _TERMINAL
        op: dict[str, Any] = {
            "name": name,
            "metadata": {"@type": BUILD_METADATA_TYPE, "build": build.data},
            "done": done,
        }
        if done:
            op["response"] = {"@type": BUILD_TYPE, **build.data}
        return 200, op


def _step_output(build: _Build, step: dict[str, Any]) -> str:
    """What a step wrote to $BUILDER_OUTPUT/output, base64 as in the API: the deploy's URL."""
    script = " ".join(step.get("args", []))
    match = re.search(r"gcloud run deploy (\S+)", script)
    if match is None:
        return ""
    url = f"https://{match.group(1)}-abc123xyz-{_region_code(build.location)}.a.run.app\n"
    return base64.b64encode(url.encode()).decode()


def service_url(service: str, region: str = "us-central1") -> str:
    """The URL a fake deploy of `service` reports."""
    return f"https://{service}-abc123xyz-{_region_code(region)}.a.run.app"


def _region_code(region: str) -> str:
    return {"us-central1": "uc", "europe-west1": "ew"}.get(region, "zz")


_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def _error(code: int, message: str) -> tuple[int, Any]:
    return code, {
        "error": {"code": code, "message": message, "status": _STATUS_NAMES.get(code, "UNKNOWN")}
    }


def main() -> None:
    """Run the fake for a local stack: `python -m tests.support.fake_gcp --topic TOPIC`.

    Builds move by themselves (every `--step-s`) and notify the topic, so a `make dev` agent
    started with DEPLOYCHAT_CLOUDBUILD_ENDPOINT and DEPLOYCHAT_STORAGE_ENDPOINT set to the
    printed URL shows a Cloud Run deployment's whole progress without Google Cloud.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--topic", required=True, help="projects/<p>/topics/cloud-builds")
    parser.add_argument("--step-s", type=float, default=2.0)
    args = parser.parse_args()
    fake = FakeGcp(notify_topic=args.topic, auto_advance_s=args.step_s).start()
    print(fake.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
