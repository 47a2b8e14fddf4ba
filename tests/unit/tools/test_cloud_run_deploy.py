"""deploy_cloud_run through the real Cloud Build and Cloud Run clients (REST transport) against
tests/support/fake_gcp.py."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import run_v2
from google.cloud.devtools import cloudbuild_v1

from agent.tools import (
    Cancelled,
    CloudRunTarget,
    DeployResult,
    GcsUploader,
    Progress,
    ToolError,
    analyse_directory,
    deploy_cloud_run,
    generate_dockerfile,
)
from deploychat.errors import TransientError
from tests.support import sample_repos as samples
from tests.support.fake_gcp import FAKE_DIGEST, FakeGcp

TARGET = CloudRunTarget(project="my-project", region="us-central1", service="hello")
SERVICE = "projects/my-project/locations/us-central1/services/hello"
IMAGE_REPO = "us-central1-docker.pkg.dev/my-project/deploychat/hello"


class Recorder:
    def __init__(self, cancel_when: Callable[[Progress], bool] | None = None) -> None:
        self.seen: list[Progress] = []
        self._cancel_when = cancel_when
        self.cancel = False

    def __call__(self, progress: Progress) -> None:
        self.seen.append(progress)
        if self._cancel_when is not None and self._cancel_when(progress):
            self.cancel = True

    def should_cancel(self) -> bool:
        return self.cancel

    @property
    def stages(self) -> list[str]:
        out: list[str] = []
        for p in self.seen:
            if not out or out[-1] != p.stage:
                out.append(p.stage)
        return out


@pytest.fixture
def fake() -> Iterator[FakeGcp]:
    with FakeGcp() as server:
        yield server


def deploy(
    fake: FakeGcp,
    tmp_path: Path,
    *,
    builder: Callable[[Path], Path] = samples.write_flask_app,
    recorder: Recorder | None = None,
    target: CloudRunTarget = TARGET,
    **kwargs: Any,
) -> DeployResult:
    source = tmp_path / "hello"
    if not source.exists():
        builder(source)
    analysis = analyse_directory(source)
    options = ClientOptions(api_endpoint=fake.url)
    recorder = recorder or Recorder()
    return deploy_cloud_run(
        source,
        analysis,
        generate_dockerfile(analysis),
        target,
        on_progress=recorder,
        should_cancel=recorder.should_cancel,
        build_client=cloudbuild_v1.CloudBuildClient(
            transport="rest", credentials=AnonymousCredentials(), client_options=options
        ),
        run_client=run_v2.ServicesClient(
            transport="rest", credentials=AnonymousCredentials(), client_options=options
        ),
        storage_uploader=GcsUploader(target.project, session=requests.Session(), endpoint=fake.url),
        poll_interval_s=0.01,
        progress_interval_s=0,
        **kwargs,
    )


def sent_build(fake: FakeGcp) -> cloudbuild_v1.Build:
    (request,) = fake.calls("POST", "/builds")
    return cloudbuild_v1.Build.from_json(request.body.decode(), ignore_unknown_fields=True)


def sent_service(fake: FakeGcp, method: str) -> run_v2.Service:
    (request,) = fake.calls(method, "/services")
    return run_v2.Service.from_json(request.body.decode(), ignore_unknown_fields=True)


def test_first_deploy_builds_and_creates_the_service(fake: FakeGcp, tmp_path: Path) -> None:
    (tmp_path / "hello" / "node_modules" / "x").mkdir(parents=True)
    samples.write_flask_app(tmp_path / "hello")
    (tmp_path / "hello" / "Dockerfile").write_text("FROM scratch\n")  # theirs: replaced
    (tmp_path / "hello" / "node_modules" / "x" / "junk.js").write_text("x")
    recorder = Recorder()
    result = deploy(fake, tmp_path, recorder=recorder, env={"GREETING": "Hi"})

    assert result.kind == "cloud_run"
    assert result.url == "https://hello-abc123xyz-uc.a.run.app"
    assert result.image == f"{IMAGE_REPO}@{FAKE_DIGEST}"  # the built image, by digest
    assert (result.service, result.port) == (SERVICE, 8080)
    assert result.build_id and result.build_log_url and result.build_id in result.build_log_url

    # The source went to the Cloud Build bucket (created on first use), with our Dockerfile.
    assert "my-project_cloudbuild" in fake.buckets
    ((bucket, name), data) = next(iter(fake.uploads.items()))
    assert bucket == "my-project_cloudbuild"
    assert name == f"source/deploychat-hello-{result.deployment_id}.tgz"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(tar.getnames())
        dockerfile = tar.extractfile("Dockerfile").read().decode()  # type: ignore[union-attr]
    assert {"app.py", "requirements.txt", "tests/test_app.py", ".dockerignore"} <= names
    assert not any(n.startswith(("node_modules", ".git/")) for n in names)
    assert "gunicorn --bind 0.0.0.0:$PORT" in dockerfile

    # The build: from that object, regional, tagged image pushed by Cloud Build.
    (create,) = fake.calls("POST", "/builds")
    assert create.query["parent"] == ["projects/my-project/locations/us-central1"]
    build = sent_build(fake)
    assert build.source.storage_source.bucket == bucket
    assert build.source.storage_source.object_ == name
    image_tag = f"{IMAGE_REPO}:{result.deployment_id}"
    assert [s.id for s in build.steps] == ["artifact-registry", "docker-build"]
    assert "gcloud artifacts repositories create deploychat" in build.steps[0].args[1]
    assert list(build.steps[1].args) == ["build", "--tag", image_tag, "--file", "Dockerfile", "."]
    assert list(build.images) == [image_tag]
    assert build.options.logging == cloudbuild_v1.BuildOptions.LoggingMode.CLOUD_LOGGING_ONLY

    # The service: created (it did not exist), running that image on port 8080.
    (created,) = fake.calls("POST", "/v2/")
    assert created.query["serviceId"] == ["hello"]
    service = sent_service(fake, "POST")
    (container,) = service.template.containers
    assert container.image == result.image
    assert [p.container_port for p in container.ports] == [8080]
    assert [(e.name, e.value) for e in container.env] == [("GREETING", "Hi")]
    assert fake.calls("PATCH", "/v2/") == []

    percents = [p.percent for p in recorder.seen]
    assert percents == sorted(percents) and percents[-1] == 100
    assert recorder.stages == ["preparing", "uploading", "building", "deploying", "done"]
    building = [p for p in recorder.seen if p.stage == "building"]
    assert any("queued" in p.message for p in building)
    assert any("step 2/2 (docker-build)" in p.message for p in building)


def test_next_deploy_updates_the_service_and_keeps_its_settings(
    fake: FakeGcp, tmp_path: Path
) -> None:
    first = deploy(fake, tmp_path)
    fake.services[SERVICE]["template"]["containers"][0]["env"] = [{"name": "KEEP", "value": "1"}]
    fake.requests.clear()
    second = deploy(fake, tmp_path, env={"GREETING": "Hi"})
    assert second.url == first.url and second.deployment_id != first.deployment_id
    assert fake.calls("POST", "/v2/") == []
    service = sent_service(fake, "PATCH")
    (container,) = service.template.containers
    assert container.image == second.image
    assert [(e.name, e.value) for e in container.env] == [("KEEP", "1"), ("GREETING", "Hi")]
    assert fake.services[SERVICE]["generation"] == "2"
    assert [r for r in fake.requests if r.path == "/storage/v1/b"] == []  # exists now


def test_failed_build_reports_the_step_and_the_logs(tmp_path: Path) -> None:
    with FakeGcp(fail_build=True, failing_step=1) as fake:
        with pytest.raises(ToolError) as raised:
            deploy(fake, tmp_path)
        (build,) = fake.builds.values()
        message = raised.value.message
        assert "ended with FAILURE at step 2 (docker-build)" in message
        assert "step exited with non-zero status: 1" in message
        assert build.data["logUrl"] in message
        assert fake.calls("GET", "/v2/") == [] and fake.calls("POST", "/v2/") == []


def test_cancel_mid_build_cancels_the_build(fake: FakeGcp, tmp_path: Path) -> None:
    recorder = Recorder(cancel_when=lambda p: p.stage == "building" and "running" in p.message)
    with pytest.raises(Cancelled):
        deploy(fake, tmp_path, recorder=recorder)
    (build_id,) = fake.builds
    assert fake.cancelled_builds == [build_id]
    (cancel,) = fake.calls("POST", ":cancel")
    assert cancel.path.endswith(f"/builds/{build_id}:cancel")
    assert fake.builds[build_id].data["status"] == "CANCELLED"
    assert [r for r in fake.requests if r.path.startswith("/v2/")] == []  # no deploy started


def test_cancel_before_anything_starts(fake: FakeGcp, tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.cancel = True
    with pytest.raises(Cancelled):
        deploy(fake, tmp_path, recorder=recorder)
    assert fake.requests == []


def test_build_api_refused(tmp_path: Path) -> None:
    failure = (403, "Cloud Build API has not been used in project my-project")
    with FakeGcp(fail_next={"create_build": failure}) as fake:
        with pytest.raises(ToolError, match="refused to start a Cloud Build build") as raised:
            deploy(fake, tmp_path)
        assert "has not been used" in raised.value.message


def test_rate_limited_is_transient(tmp_path: Path) -> None:
    failure = {"get_build": (429, "Quota exceeded")}
    with FakeGcp(fail_next=failure) as fake, pytest.raises(TransientError, match="not answering"):
        deploy(fake, tmp_path)


def test_unavailable_once_is_retried_by_the_client(tmp_path: Path) -> None:
    with FakeGcp(fail_next={"get_build": (503, "backend unavailable")}) as fake:
        assert deploy(fake, tmp_path).url.startswith("https://")


def test_upload_refused(tmp_path: Path) -> None:
    with FakeGcp(fail_next={"upload": (403, "no storage.objects.create")}) as fake:
        with pytest.raises(ToolError, match="Could not upload the source") as raised:
            deploy(fake, tmp_path)
        assert "storage.objects.create" in raised.value.message
        assert fake.builds == {}


def test_rollout_that_fails(tmp_path: Path) -> None:
    error = {"code": 9, "message": "Revision 'hello-00001' is not ready: failed to start on 8080"}
    with FakeGcp(rollout_error=error) as fake:
        with pytest.raises(ToolError, match="Cloud Run could not deploy hello") as raised:
            deploy(fake, tmp_path)
        assert "failed to start" in raised.value.message


def test_app_with_a_hard_coded_port_gets_that_container_port(fake: FakeGcp, tmp_path: Path) -> None:
    source = samples.write_express_app(tmp_path / "hello")
    (source / "server.js").write_text(
        'const express = require("express");\nconst app = express();\napp.listen(3000);\n'
    )
    result = deploy(fake, tmp_path)
    assert result.port == 3000
    service = sent_service(fake, "POST")
    assert [p.container_port for p in service.template.containers[0].ports] == [3000]


def test_without_repository_step(fake: FakeGcp, tmp_path: Path) -> None:
    target = TARGET.model_copy(update={"create_repository": False, "repository": "apps"})
    result = deploy(fake, tmp_path, target=target)
    assert [s.id for s in sent_build(fake).steps] == ["docker-build"]
    assert result.image is not None and result.image.startswith(
        "us-central1-docker.pkg.dev/my-project/apps/hello@"
    )


@pytest.mark.parametrize(
    "bad",
    [{"project": "X"}, {"region": "moon"}, {"service": "Hello_World"}, {"service": "-x"}],
)
def test_target_is_validated(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        CloudRunTarget.model_validate({**TARGET.model_dump(), **bad})


def test_result_is_json_serialisable(fake: FakeGcp, tmp_path: Path) -> None:
    json.dumps(deploy(fake, tmp_path).model_dump(mode="json"))
