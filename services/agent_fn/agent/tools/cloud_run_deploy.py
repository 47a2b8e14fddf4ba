"""Deploys an analysed app to Cloud Run: Cloud Build builds our Dockerfile, Cloud Run runs it.

Steps: pack the source with the generated Dockerfile, upload it to `gs://<project>_cloudbuild`,
submit a build that pushes to Artifact Registry, follow the build's real step statuses, then
create or update the service and follow its rollout. Both clients use the REST transport so
they can be pointed at a local fake (see tests/support/fake_gcp.py).
"""

from __future__ import annotations

import contextlib
import math
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated

import requests
from google.api_core import exceptions as gexc
from google.api_core.operation import Operation
from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError
from google.cloud import run_v2
from google.cloud.devtools import cloudbuild_v1
from google.protobuf import duration_pb2
from pydantic import BaseModel, ConfigDict, StringConstraints

from deploychat.errors import TransientError

from .analysis_model import Analysis
from .deploy_result import DeployResult
from .dockerfile_gen import GeneratedFiles
from .errors import Cancelled, ToolError
from .gcs_upload import GcsUploader, SourceUploader
from .progress import CancelCheck, ProgressCallback, ProgressReporter
from .source_archive import make_source_archive

DOCKER_BUILDER = "gcr.io/cloud-builders/docker"
GCLOUD_BUILDER = "gcr.io/google.com/cloudsdktool/cloud-sdk:slim"
BUILD_TIMEOUT_S = 1200

_Build = cloudbuild_v1.Build
_FAILED = {
    _Build.Status.FAILURE,
    _Build.Status.INTERNAL_ERROR,
    _Build.Status.TIMEOUT,
    _Build.Status.CANCELLED,
    _Build.Status.EXPIRED,
}
_BUILD_FROM, _BUILD_TO = 20, 75
_ROLLOUT_FROM, _ROLLOUT_TO = 80, 95


class CloudRunTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    project: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")]
    region: Annotated[str, StringConstraints(pattern=r"^[a-z]+-[a-z]+\d+$")]
    service: Annotated[str, StringConstraints(pattern=r"^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$")]
    repository: Annotated[str, StringConstraints(pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")] = (
        "deploychat"
    )
    # Add a first build step that creates the Artifact Registry repository if it is missing.
    create_repository: bool = True

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    @property
    def service_name(self) -> str:
        return f"{self.parent}/services/{self.service}"

    @property
    def image_repo(self) -> str:
        return f"{self.region}-docker.pkg.dev/{self.project}/{self.repository}/{self.service}"


def deploy_cloud_run(
    source_dir: Path,
    analysis: Analysis,
    files: GeneratedFiles,
    target: CloudRunTarget,
    *,
    on_progress: ProgressCallback,
    should_cancel: CancelCheck,
    build_client: cloudbuild_v1.CloudBuildClient | None = None,
    run_client: run_v2.ServicesClient | None = None,
    storage_uploader: SourceUploader | None = None,
    env: Mapping[str, str] | None = None,
    deployment_id: str | None = None,
    poll_interval_s: float = 3.0,
    build_timeout_s: float = 1800,
    rollout_timeout_s: float = 600,
    sleep: Callable[[float], None] = time.sleep,
    progress_interval_s: float = 2.0,
) -> DeployResult:
    """Build `source_dir` with `files` on Cloud Build and run it as `target`: the live URL.

    Without injected clients and uploader, uses Application Default Credentials. `env` is set
    on the container (added to what an existing service has).
    """
    progress = ProgressReporter(on_progress, should_cancel, min_interval_s=progress_interval_s)
    deployment_id = deployment_id or uuid.uuid4().hex[:12]
    # An image tag and a build tag allow only these characters.
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", deployment_id).lstrip(".-")[:100] or "deploy"
    polling = _Polling(progress, should_cancel, poll_interval_s, sleep)

    progress.report("preparing", 2, f"Packing the source of {analysis.name}")
    progress.check_cancel()
    if not source_dir.is_dir():
        raise ToolError(f"There is no directory {source_dir} to deploy.")
    with _api_errors("connect to Google Cloud"):
        build_client = build_client or cloudbuild_v1.CloudBuildClient(transport="rest")
        run_client = run_client or run_v2.ServicesClient(transport="rest")
    uploader = storage_uploader or GcsUploader(target.project)
    bucket = f"{target.project}_cloudbuild"
    object_name = f"source/deploychat-{target.service}-{tag}.tgz"
    with tempfile.TemporaryDirectory(prefix="deploychat-src-") as tmp:
        archive = make_source_archive(source_dir, files, Path(tmp) / "source.tgz")
        progress.check_cancel()
        size_mb = archive.stat().st_size / 1e6
        progress.report("uploading", 8, f"Uploading the source ({size_mb:.1f} MB) to gs://{bucket}")
        uploader(archive, bucket, object_name)
    progress.report("uploading", 15, "Source uploaded")
    progress.check_cancel()

    image = f"{target.image_repo}:{tag}"
    build = _submit_build(build_client, target, bucket, object_name, image, tag)
    progress.report("building", _BUILD_FROM, f"Build {build.id} submitted to Cloud Build")
    build = _follow_build(build_client, target, build, polling, build_timeout_s)
    digest = next((i.digest for i in build.results.images if i.digest), "")
    deployed_image = f"{target.image_repo}@{digest}" if digest else image
    progress.report("building", _BUILD_TO, f"Image built: {deployed_image}")

    progress.check_cancel()
    service = _deploy_service(
        run_client, target, deployed_image, files.port, dict(env or {}), polling, rollout_timeout_s
    )
    url = service.uri
    if not url:
        with _api_errors("read the Cloud Run service"):
            url = run_client.get_service(name=target.service_name).uri
    progress.report("done", 100, f"{target.service} is live at {url}")
    return DeployResult(
        kind="cloud_run",
        url=url,
        port=files.port,
        deployment_id=deployment_id,
        image=deployed_image,
        service=target.service_name,
        build_id=build.id,
        build_log_url=build.log_url or None,
    )


class _Polling:
    """The wait between polls, with the cancel check that every polling loop needs."""

    def __init__(
        self,
        progress: ProgressReporter,
        should_cancel: CancelCheck,
        interval_s: float,
        sleep: Callable[[float], None],
    ) -> None:
        self.progress = progress
        self.should_cancel = should_cancel
        self.interval_s = interval_s
        self._sleep = sleep

    def wait(self) -> None:
        # Sleep in slices so a cancel is noticed within a fraction of a second.
        end = time.monotonic() + self.interval_s
        while not self.should_cancel():
            left = end - time.monotonic()
            if left <= 0:
                return
            self._sleep(min(left, 0.25))


# ---------------------------------------------------------------- Cloud Build


def _submit_build(
    client: cloudbuild_v1.CloudBuildClient,
    target: CloudRunTarget,
    bucket: str,
    object_name: str,
    image: str,
    tag: str,
) -> cloudbuild_v1.Build:
    steps = []
    if target.create_repository:
        steps.append(
            cloudbuild_v1.BuildStep(
                id="artifact-registry",
                name=GCLOUD_BUILDER,
                entrypoint="bash",
                args=[
                    "-c",
                    f"gcloud artifacts repositories describe {target.repository} "
                    f"--location={target.region} >/dev/null 2>&1 || "
                    f"gcloud artifacts repositories create {target.repository} "
                    f"--location={target.region} --repository-format=docker "
                    "--description='Images deployed by deploychat'",
                ],
            )
        )
    steps.append(
        cloudbuild_v1.BuildStep(
            id="docker-build",
            name=DOCKER_BUILDER,
            args=["build", "--tag", image, "--file", "Dockerfile", "."],
        )
    )
    build = cloudbuild_v1.Build(
        source=cloudbuild_v1.Source(
            storage_source=cloudbuild_v1.StorageSource(bucket=bucket, object_=object_name)
        ),
        steps=steps,
        images=[image],  # pushed by Cloud Build after the steps, and reported with its digest
        timeout=duration_pb2.Duration(seconds=BUILD_TIMEOUT_S),
        tags=["deploychat", target.service, f"deployment-{tag}"],
        options=cloudbuild_v1.BuildOptions(
            # Logs in Cloud Logging only: no logs bucket to own or grant access to.
            logging=cloudbuild_v1.BuildOptions.LoggingMode.CLOUD_LOGGING_ONLY,
        ),
    )
    with _api_errors("start a Cloud Build build"):
        operation = client.create_build(
            project_id=target.project, parent=target.parent, build=build
        )
        created: cloudbuild_v1.Build = operation.metadata.build
    return created


def _follow_build(
    client: cloudbuild_v1.CloudBuildClient,
    target: CloudRunTarget,
    build: cloudbuild_v1.Build,
    polling: _Polling,
    timeout_s: float,
) -> cloudbuild_v1.Build:
    name = f"{target.parent}/builds/{build.id}"
    started = time.monotonic()
    while True:
        if polling.should_cancel():
            _cancel_build(client, target, build.id, name)
            raise Cancelled(f"cancelled: build {build.id} was stopped")
        with _api_errors("check on the build"):
            build = client.get_build(name=name, project_id=target.project, id=build.id)
        if build.status == _Build.Status.SUCCESS:
            return build
        if build.status in _FAILED:
            raise ToolError(_build_failure(build))
        elapsed = time.monotonic() - started
        percent, message = _build_progress(build, elapsed)
        polling.progress.report("building", percent, message)
        if elapsed > timeout_s:
            _cancel_build(client, target, build.id, name)
            raise ToolError(
                f"The build took longer than {timeout_s:g} s, so I cancelled it. "
                f"Logs: {build.log_url}"
            )
        polling.wait()


def _build_progress(build: cloudbuild_v1.Build, elapsed: float) -> tuple[int, str]:
    status = build.status
    if status in (_Build.Status.QUEUED, _Build.Status.PENDING, _Build.Status.STATUS_UNKNOWN):
        return _BUILD_FROM, "Build queued, waiting for a worker"
    steps = list(build.steps)
    done = sum(1 for s in steps if s.status == _Build.Status.SUCCESS)
    running = next((i for i, s in enumerate(steps) if s.status == _Build.Status.WORKING), None)
    total = max(1, len(steps))
    if running is None and done == len(steps):
        return _BUILD_TO - 3, "All build steps done: pushing the image"
    # A step reports no percentage of its own: creep within its share, never past it.
    creep = 0.9 * (1 - math.exp(-elapsed / 90)) if running is not None else 0.0
    share = (_BUILD_TO - 3 - (_BUILD_FROM + 5)) / total
    percent = int(_BUILD_FROM + 5 + share * (done + creep))
    current = steps[running] if running is not None else None
    label = (current.id or current.name) if current is not None else "starting"
    return percent, f"Building: step {done + 1}/{total} ({label}) running"


def _build_failure(build: cloudbuild_v1.Build) -> str:
    status = _Build.Status(build.status).name
    failed = next(
        (
            f"step {i + 1} ({s.id or s.name})"
            for i, s in enumerate(build.steps)
            if s.status in _FAILED
        ),
        None,
    )
    detail = build.failure_info.detail or build.status_detail or "no detail given"
    where = f" at {failed}" if failed else ""
    return (
        f"The Cloud Build build {build.id} ended with {status}{where}: {detail}. "
        f"Build logs: {build.log_url}"
    )


def _cancel_build(
    client: cloudbuild_v1.CloudBuildClient, target: CloudRunTarget, build_id: str, name: str
) -> None:
    # Best effort: the build may have finished meanwhile, or the network be gone.
    with contextlib.suppress(gexc.GoogleAPICallError, requests.RequestException):
        client.cancel_build(name=name, project_id=target.project, id=build_id)


# ---------------------------------------------------------------- Cloud Run


def _deploy_service(
    client: run_v2.ServicesClient,
    target: CloudRunTarget,
    image: str,
    port: int,
    env: dict[str, str],
    polling: _Polling,
    timeout_s: float,
) -> run_v2.Service:
    existing: run_v2.Service | None
    try:
        with _api_errors("read the Cloud Run service"):
            existing = client.get_service(name=target.service_name)
    except _NotFoundError:
        existing = None
    container = run_v2.Container(
        image=image,
        ports=[run_v2.ContainerPort(container_port=port)],
        env=[run_v2.EnvVar(name=k, value=v) for k, v in env.items()],
    )
    operation: Operation
    if existing is None:
        polling.progress.report(
            "deploying", _ROLLOUT_FROM, f"Creating Cloud Run service {target.service}"
        )
        service = run_v2.Service(
            template=run_v2.RevisionTemplate(containers=[container]),
            labels={"managed-by": "deploychat"},
        )
        with _api_errors("create the Cloud Run service"):
            operation = client.create_service(
                parent=target.parent, service=service, service_id=target.service
            )
    else:
        polling.progress.report(
            "deploying", _ROLLOUT_FROM, f"Updating Cloud Run service {target.service}"
        )
        # Keep everything the service has (env, scaling, secrets); change the image and port,
        # and set the variables given, leaving the others as they are.
        if existing.template.containers:
            first = existing.template.containers[0]
            first.image = image
            first.ports = [run_v2.ContainerPort(container_port=port)]
            kept = [e for e in first.env if e.name not in env]
            first.env = [*kept, *container.env]
        else:
            existing.template.containers = [container]
        with _api_errors("update the Cloud Run service"):
            operation = client.update_service(service=existing)
    return _follow_rollout(operation, target, polling, timeout_s)


def _follow_rollout(
    operation: Operation, target: CloudRunTarget, polling: _Polling, timeout_s: float
) -> run_v2.Service:
    started = time.monotonic()
    percent = _ROLLOUT_FROM
    while True:
        with _api_errors("check on the Cloud Run rollout"):
            done = operation.done()  # type: ignore[no-untyped-call]
        if done:
            break
        if polling.should_cancel():
            # A rollout cannot be called back; say so rather than pretend it stopped.
            raise Cancelled(
                f"cancelled while Cloud Run was rolling out {target.service}; "
                "the new revision may still go live"
            )
        if time.monotonic() - started > timeout_s:
            raise ToolError(
                f"Cloud Run did not finish rolling out {target.service} within {timeout_s:g} s."
            )
        percent = min(_ROLLOUT_TO, percent + 2)
        polling.progress.report(
            "deploying", percent, f"Rolling out a new revision of {target.service}"
        )
        polling.wait()
    error = operation.exception()  # type: ignore[no-untyped-call]
    if error is not None:
        message = getattr(error, "message", None) or str(error)
        raise ToolError(f"Cloud Run could not deploy {target.service}: {message}")
    service: run_v2.Service = operation.result()  # type: ignore[no-untyped-call]
    return service


# ---------------------------------------------------------------- errors


class _NotFoundError(ToolError):
    """A NotFound from the API, for the one call where that is an answer, not a failure."""


_TRANSIENT = (
    gexc.TooManyRequests,
    gexc.ServiceUnavailable,
    gexc.InternalServerError,
    gexc.GatewayTimeout,
    gexc.DeadlineExceeded,
    gexc.RetryError,
)


@contextlib.contextmanager
def _api_errors(what: str) -> Iterator[None]:
    """Google API errors as a message for the user: permanent, or retryable when it may pass."""
    try:
        yield
    except gexc.NotFound as exc:
        raise _NotFoundError(f"Could not {what}: not found ({exc.message})") from exc
    except (gexc.PermissionDenied, gexc.Unauthenticated, gexc.Forbidden, gexc.Unauthorized) as exc:
        raise ToolError(
            f"Google Cloud refused to {what}: {exc.message}. Check that the APIs (Cloud Build, "
            "Cloud Run, Artifact Registry) are enabled and the account has the roles to use them."
        ) from exc
    except _TRANSIENT as exc:
        raise TransientError(f"Google Cloud is not answering to {what} right now: {exc}") from exc
    except gexc.GoogleAPICallError as exc:
        raise ToolError(f"Could not {what}: {exc.message}") from exc
    except DefaultCredentialsError as exc:
        raise ToolError(f"No Google Cloud credentials to {what}: {exc}") from exc
    except GoogleAuthError as exc:
        raise ToolError(f"Google Cloud credentials did not work to {what}: {exc}") from exc
    except requests.RequestException as exc:
        raise TransientError(f"Could not reach Google Cloud to {what}: {exc}") from exc
