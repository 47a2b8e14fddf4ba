"""Starts a Cloud Run deployment: ONE Cloud Build build that builds the image and deploys it.

The turn packs the source (with the build plan's generated Dockerfile, if any), uploads it to
`gs://<project>_cloudbuild`, submits the build and returns: the build outlives the turn. Its
steps are: the Artifact Registry repository (created if missing), the image (the repository's
Dockerfile, ours, or buildpacks through `pack`), the push, and `gcloud run deploy`, whose step
writes the service URL to `$BUILDER_OUTPUT/output`. Progress comes later from Cloud Build's
Pub/Sub notifications (agent/deployment_events.py), which find their deployment through the
build's substitutions.

The client uses the REST transport so it can be pointed at a local fake (tests/support/fake_gcp.py).
"""

from __future__ import annotations

import contextlib
import re
import shlex
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated

import requests
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError
from google.cloud.devtools import cloudbuild_v1
from google.protobuf import duration_pb2
from pydantic import BaseModel, ConfigDict, StringConstraints

from deploychat.errors import TransientError

from .analysis_model import Analysis
from .build_plan import BuildPlan, plan_build
from .errors import Cancelled, ToolError
from .gcs_upload import GcsUploader, SourceUploader
from .progress import CancelCheck, ProgressCallback, ProgressReporter
from .source_archive import make_source_archive

DOCKER_BUILDER = "gcr.io/cloud-builders/docker"
GCLOUD_BUILDER = "gcr.io/google.com/cloudsdktool/cloud-sdk:slim"
PACK_BUILDER = "gcr.io/k8s-skaffold/pack"
# Build and rollout together; Cloud Build enforces it, not the turn.
BUILD_TIMEOUT_S = 1800
# How notifications find their deployment (custom substitutions start with `_`).
SESSION_KEY = "_DEPLOYCHAT_SESSION"
DEPLOYMENT_KEY = "_DEPLOYCHAT_DEPLOYMENT"
BUILD_TAG = "deploychat"
# Step ids, in build order; deployment_events.py names the stages after them.
STEP_REGISTRY, STEP_BUILD, STEP_PUSH, STEP_DEPLOY = "registry", "build", "push", "deploy"


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


class BuildOptions(BaseModel):
    """How the agent's builds run (from the agent's settings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service_account: str | None = None  # email of the account the build runs as
    app_service_account: str | None = None  # email of the account the deployed app runs as
    allow_unauthenticated: bool = False  # make the service public (needs run.admin)


class BuildStarted(BaseModel):
    model_config = ConfigDict(extra="forbid")

    build_id: str
    log_url: str | None
    image: str
    service: str  # projects/<p>/locations/<r>/services/<s>
    steps: list[str]  # step ids, in order
    port: int
    description: str = ""  # how the image is built, for people


def build_client(endpoint: str | None = None) -> cloudbuild_v1.CloudBuildClient:
    """A Cloud Build client: Application Default Credentials, or anonymous for a local fake."""
    with api_errors("connect to Cloud Build"):
        if endpoint:
            return cloudbuild_v1.CloudBuildClient(
                transport="rest",
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                client_options=ClientOptions(api_endpoint=endpoint),
            )
        return cloudbuild_v1.CloudBuildClient(transport="rest")


def deployment_tag(deployment_id: str) -> str:
    # An image tag and a build tag allow only these characters.
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", deployment_id).lstrip(".-")[:100] or "deploy"
    return f"deployment-{tag}"


def start_cloud_run_build(
    source_dir: Path,
    analysis: Analysis,
    target: CloudRunTarget,
    *,
    session_id: str,
    deployment_id: str | None = None,
    on_progress: ProgressCallback,
    should_cancel: CancelCheck,
    client: cloudbuild_v1.CloudBuildClient | None = None,
    storage_uploader: SourceUploader | None = None,
    options: BuildOptions | None = None,
    env: Mapping[str, str] | None = None,
    plan: BuildPlan | None = None,
    progress_interval_s: float = 2.0,
) -> BuildStarted:
    """Upload `source_dir` and submit the build that deploys it as `target`; returns at once.

    Progress is reported while packing and uploading; the caller reports the build's start.

    `env` is set on the service, on top of the plan's (and of what an existing service has).
    A cancel noticed after the build was submitted cancels it before raising Cancelled.
    """
    progress = ProgressReporter(on_progress, should_cancel, min_interval_s=progress_interval_s)
    deployment_id = deployment_id or uuid.uuid4().hex[:12]
    tag = deployment_tag(deployment_id)
    options = options or BuildOptions()

    progress.report("packing", 2, f"Packing the source of {analysis.name}")
    progress.check_cancel()
    if not source_dir.is_dir():
        raise ToolError(f"There is no directory {source_dir} to deploy.")
    plan = plan or plan_build(analysis, source_dir)
    client = client or build_client()
    uploader = storage_uploader or GcsUploader(target.project)
    bucket = f"{target.project}_cloudbuild"
    object_name = f"source/deploychat-{target.service}-{tag}.tgz"
    with tempfile.TemporaryDirectory(prefix="deploychat-src-") as tmp:
        archive = make_source_archive(plan.context_dir, plan, Path(tmp) / "source.tgz")
        progress.check_cancel()
        size_mb = archive.stat().st_size / 1e6
        progress.report("uploading", 8, f"Uploading the source ({size_mb:.1f} MB) to gs://{bucket}")
        uploader(archive, bucket, object_name)
    progress.check_cancel()

    image = f"{target.image_repo}:{tag.removeprefix('deployment-')}"
    build = build_spec(
        target,
        plan,
        image,
        bucket=bucket,
        object_name=object_name,
        tag=tag,
        session_id=session_id,
        deployment_id=deployment_id,
        options=options,
        env={**plan.env, **(env or {})},
    )
    with api_errors("start a Cloud Build build"):
        operation = client.create_build(
            project_id=target.project, parent=target.parent, build=build
        )
        created: cloudbuild_v1.Build = operation.metadata.build
    if should_cancel():
        cancel_build(client, target.project, target.region, created.id)
        raise Cancelled(f"cancelled: build {created.id} was stopped")
    return BuildStarted(
        build_id=created.id,
        log_url=created.log_url or None,
        image=image,
        service=target.service_name,
        steps=[s.id for s in build.steps],
        port=plan.port,
        description=plan.description,
    )


def build_spec(
    target: CloudRunTarget,
    plan: BuildPlan,
    image: str,
    *,
    bucket: str,
    object_name: str,
    tag: str,
    session_id: str,
    deployment_id: str,
    options: BuildOptions,
    env: Mapping[str, str],
) -> cloudbuild_v1.Build:
    """The one build: [registry], image, push, deploy. User text is escaped from substitution."""
    steps: list[cloudbuild_v1.BuildStep] = []
    if target.create_repository:
        repo = f"{target.repository} --location={target.region} --project={target.project}"
        steps.append(
            cloudbuild_v1.BuildStep(
                id=STEP_REGISTRY,
                name=GCLOUD_BUILDER,
                entrypoint="bash",
                args=[
                    "-c",
                    f"gcloud artifacts repositories describe {repo} >/dev/null 2>&1 || "
                    f"gcloud artifacts repositories create {repo} --repository-format=docker "
                    "--description='Images deployed by deploychat'",
                ],
            )
        )
    if plan.kind == "buildpacks":
        pack_args = ["build", image, "--builder", plan.builder or "", "--network", "cloudbuild"]
        for key, value in sorted(plan.build_env.items()):
            pack_args += ["--env", f"{key}={value}"]
        steps.append(
            cloudbuild_v1.BuildStep(
                id=STEP_BUILD,
                name=PACK_BUILDER,
                entrypoint="pack",
                args=[_literal(a) for a in pack_args],
            )
        )
    else:
        steps.append(
            cloudbuild_v1.BuildStep(
                id=STEP_BUILD,
                name=DOCKER_BUILDER,
                args=[
                    "build",
                    "--tag",
                    image,
                    "--file",
                    _literal(plan.dockerfile_path or "Dockerfile"),
                    ".",
                ],
            )
        )
    steps.append(cloudbuild_v1.BuildStep(id=STEP_PUSH, name=DOCKER_BUILDER, args=["push", image]))
    steps.append(
        cloudbuild_v1.BuildStep(
            id=STEP_DEPLOY,
            name=GCLOUD_BUILDER,
            entrypoint="bash",
            args=["-c", deploy_script(target, image, plan.port, env, options)],
        )
    )
    spec = cloudbuild_v1.Build(
        source=cloudbuild_v1.Source(
            storage_source=cloudbuild_v1.StorageSource(bucket=bucket, object_=object_name)
        ),
        steps=steps,
        timeout=duration_pb2.Duration(seconds=BUILD_TIMEOUT_S),
        tags=[BUILD_TAG, target.service, tag],
        substitutions={SESSION_KEY: session_id, DEPLOYMENT_KEY: deployment_id},
        options=cloudbuild_v1.BuildOptions(
            # Logs in Cloud Logging only: no logs bucket to own or grant access to (and a build
            # with its own service account requires a logging choice).
            logging=cloudbuild_v1.BuildOptions.LoggingMode.CLOUD_LOGGING_ONLY,
            # The two substitutions are for the notifications, not used by any step.
            substitution_option=cloudbuild_v1.BuildOptions.SubstitutionOption.ALLOW_LOOSE,
        ),
    )
    if options.service_account:
        spec.service_account = (
            f"projects/{target.project}/serviceAccounts/{options.service_account}"
        )
    return spec


def deploy_script(
    target: CloudRunTarget,
    image: str,
    port: int,
    env: Mapping[str, str],
    options: BuildOptions,
) -> str:
    """`gcloud run deploy`, then the URL into $BUILDER_OUTPUT/output for the notification."""
    where = [f"--region={target.region}", f"--project={target.project}"]
    deploy = [
        "gcloud",
        "run",
        "deploy",
        target.service,
        f"--image={image}",
        f"--port={port}",
        "--platform=managed",
        "--labels=managed-by=deploychat",
        "--allow-unauthenticated"
        if options.allow_unauthenticated
        else "--no-allow-unauthenticated",
        "--quiet",
        *where,
    ]
    if options.app_service_account:
        deploy.append(f"--service-account={options.app_service_account}")
    if env:
        # gcloud's alternate-delimiter form, so values may hold commas.
        pairs = "##".join(f"{k}={v}" for k, v in sorted(env.items()))
        deploy.append(f"--update-env-vars=^##^{pairs}")
    describe = [
        "gcloud",
        "run",
        "services",
        "describe",
        target.service,
        *where,
        "--format=value(status.url)",
    ]
    script = (
        "set -euo pipefail\n"
        f"{shlex.join(deploy)}\n"
        f'{shlex.join(describe)} > "$BUILDER_OUTPUT/output"\n'
    )
    # $BUILDER_OUTPUT too becomes $$BUILDER_OUTPUT: bash, not Cloud Build, expands it.
    return _literal(script)


def _literal(text: str) -> str:
    # Cloud Build substitutes $NAME and ${NAME} in step args; $$ is a literal $.
    return text.replace("$", "$$")


def find_build(
    client: cloudbuild_v1.CloudBuildClient, target: CloudRunTarget, deployment_id: str
) -> cloudbuild_v1.Build | None:
    """The build started for `deployment_id`, if an earlier attempt submitted one."""
    with api_errors("look for the deployment's build"):
        builds = client.list_builds(
            request=cloudbuild_v1.ListBuildsRequest(
                project_id=target.project,
                parent=target.parent,
                filter=f'tags="{deployment_tag(deployment_id)}"',
                page_size=5,
            )
        )
        for build in builds:
            found: cloudbuild_v1.Build = build
            return found
    return None


def cancel_build(
    client: cloudbuild_v1.CloudBuildClient, project: str, region: str, build_id: str
) -> bool:
    """Best effort: the build may have finished meanwhile, or the network be gone."""
    name = f"projects/{project}/locations/{region}/builds/{build_id}"
    try:
        client.cancel_build(name=name, project_id=project, id=build_id)
    except (gexc.GoogleAPICallError, requests.RequestException, GoogleAuthError):
        return False
    return True


# ---------------------------------------------------------------- errors


_TRANSIENT = (
    gexc.TooManyRequests,
    gexc.ServiceUnavailable,
    gexc.InternalServerError,
    gexc.GatewayTimeout,
    gexc.DeadlineExceeded,
    gexc.RetryError,
)


@contextlib.contextmanager
def api_errors(what: str) -> Iterator[None]:
    """Google API errors as a message for the user: permanent, or retryable when it may pass."""
    try:
        yield
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
