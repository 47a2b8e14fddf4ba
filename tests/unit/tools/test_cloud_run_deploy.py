"""start_cloud_run_build through the real Cloud Build client (REST transport) against
tests/support/fake_gcp.py: one build that builds, pushes and deploys, submitted and left running."""

from __future__ import annotations

import base64
import io
import json
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google.cloud.devtools import cloudbuild_v1

from agent.build_status import Build, outcome, reached, service_url, stages
from agent.tools import (
    BuildStarted,
    Cancelled,
    CloudRunTarget,
    GcsUploader,
    Progress,
    ToolError,
    analyse_directory,
    start_cloud_run_build,
)
from agent.tools.cloud_run_deploy import (
    BuildOptions,
    build_client,
    cancel_build,
    find_build,
)
from deploychat.errors import TransientError
from tests.support import sample_repos as samples
from tests.support.fake_gcp import FakeGcp
from tests.support.fake_gcp import service_url as fake_url

TARGET = CloudRunTarget(project="my-project", region="us-central1", service="hello")
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


@pytest.fixture
def fake() -> Iterator[FakeGcp]:
    with FakeGcp() as server:
        yield server


def start(
    fake: FakeGcp,
    tmp_path: Path,
    *,
    builder: Callable[[Path], Path] = samples.write_flask_app,
    recorder: Recorder | None = None,
    target: CloudRunTarget = TARGET,
    **kwargs: Any,
) -> BuildStarted:
    source = tmp_path / "hello"
    if not source.exists():
        builder(source)
    analysis = analyse_directory(source)
    recorder = recorder or Recorder()
    return start_cloud_run_build(
        source,
        analysis,
        target,
        session_id="session-1234",
        deployment_id="d-turn1-abc123",
        on_progress=recorder,
        should_cancel=recorder.should_cancel,
        client=build_client(fake.url),
        storage_uploader=GcsUploader(target.project, session=requests.Session(), endpoint=fake.url),
        progress_interval_s=0,
        **kwargs,
    )


def sent_build(fake: FakeGcp) -> cloudbuild_v1.Build:
    (request,) = fake.calls("POST", "/builds")
    return cloudbuild_v1.Build.from_json(request.body.decode(), ignore_unknown_fields=True)


def test_one_build_builds_pushes_and_deploys(fake: FakeGcp, tmp_path: Path) -> None:
    (tmp_path / "hello" / "node_modules" / "x").mkdir(parents=True)
    samples.write_flask_app(tmp_path / "hello")
    (tmp_path / "hello" / "node_modules" / "x" / "junk.js").write_text("x")
    recorder = Recorder()
    started = start(
        fake,
        tmp_path,
        recorder=recorder,
        env={"GREETING": "Hi, $USER"},
        options=BuildOptions(service_account="builds@my-project.iam.gserviceaccount.com"),
    )
    assert started.image == f"{IMAGE_REPO}:d-turn1-abc123"
    assert started.steps == ["registry", "build", "push", "deploy"]
    assert started.service == "projects/my-project/locations/us-central1/services/hello"

    build = sent_build(fake)
    assert build.substitutions == {
        "_DEPLOYCHAT_SESSION": "session-1234",
        "_DEPLOYCHAT_DEPLOYMENT": "d-turn1-abc123",
    }
    assert "deployment-d-turn1-abc123" in build.tags
    assert build.service_account == (
        "projects/my-project/serviceAccounts/builds@my-project.iam.gserviceaccount.com"
    )
    assert build.options.substitution_option.name == "ALLOW_LOOSE"
    registry, image, push, deploy = build.steps
    assert "gcloud artifacts repositories create deploychat" in registry.args[1]
    assert image.args == ["build", "--tag", started.image, "--file", "Dockerfile", "."]
    assert push.args == ["push", started.image]
    script = deploy.args[1]
    assert deploy.name == "gcr.io/google.com/cloudsdktool/cloud-sdk:slim"
    assert f"gcloud run deploy hello --image={started.image} --port=8080" in script
    assert "--no-allow-unauthenticated" in script
    # Cloud Build must not substitute the user's `$USER`: it is escaped as `$$`.
    assert "'--update-env-vars=^##^GREETING=Hi, $$USER'" in script
    assert '> "$$BUILDER_OUTPUT/output"' in script

    (archive,) = fake.uploads.values()
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        names = tar.getnames()
    assert "Dockerfile" in names and "app.py" in names
    assert not any(n.startswith("node_modules") for n in names)
    stages_seen = [p.stage for p in recorder.seen]
    assert stages_seen == ["packing", "uploading"]
    assert fake.builds[started.build_id].data["status"] == "QUEUED"  # left running


def test_the_repository_dockerfile_is_kept(fake: FakeGcp, tmp_path: Path) -> None:
    source = samples.write_flask_app(tmp_path / "hello")
    (source / "Dockerfile").write_text("FROM python:3.12-slim\nCOPY . .\nCMD python app.py\n")
    start(fake, tmp_path)
    (archive,) = fake.uploads.values()
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        dockerfile = tar.extractfile("Dockerfile")
        assert dockerfile is not None and b"CMD python app.py" in dockerfile.read()


def test_public_services_and_their_runtime_account(fake: FakeGcp, tmp_path: Path) -> None:
    options = BuildOptions(
        allow_unauthenticated=True, app_service_account="app@my-project.iam.gserviceaccount.com"
    )
    start(fake, tmp_path, options=options)
    script = sent_build(fake).steps[-1].args[1]
    assert " --allow-unauthenticated " in script
    assert "--service-account=app@my-project.iam.gserviceaccount.com" in script


def test_cancel_before_anything_starts(fake: FakeGcp, tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.cancel = True
    with pytest.raises(Cancelled):
        start(fake, tmp_path, recorder=recorder)
    assert fake.requests == []


def test_cancel_after_the_upload_starts_no_build(fake: FakeGcp, tmp_path: Path) -> None:
    recorder = Recorder(cancel_when=lambda p: p.stage == "uploading")
    with pytest.raises(Cancelled):
        start(fake, tmp_path, recorder=recorder)
    assert fake.builds == {}


def test_build_api_refused(tmp_path: Path) -> None:
    failure = (403, "Cloud Build API has not been used in project my-project")
    with FakeGcp(fail_next={"create_build": failure}) as fake:
        with pytest.raises(ToolError, match="refused to start a Cloud Build build") as raised:
            start(fake, tmp_path)
        assert "has not been used" in raised.value.message


def test_rate_limited_is_transient(tmp_path: Path) -> None:
    failure = {"create_build": (429, "Quota exceeded")}
    with FakeGcp(fail_next=failure) as fake, pytest.raises(TransientError, match="not answering"):
        start(fake, tmp_path)


def test_upload_refused(tmp_path: Path) -> None:
    with FakeGcp(fail_next={"upload": (403, "no storage.objects.create")}) as fake:
        with pytest.raises(ToolError, match="Could not upload the source") as raised:
            start(fake, tmp_path)
        assert "storage.objects.create" in raised.value.message
        assert fake.builds == {}


def test_without_repository_step(fake: FakeGcp, tmp_path: Path) -> None:
    target = TARGET.model_copy(update={"create_repository": False, "repository": "apps"})
    started = start(fake, tmp_path, target=target)
    assert started.steps == ["build", "push", "deploy"]
    assert started.image.startswith("us-central1-docker.pkg.dev/my-project/apps/hello:")


def test_a_build_is_found_by_its_deployment_and_cancelled(fake: FakeGcp, tmp_path: Path) -> None:
    started = start(fake, tmp_path)
    client = build_client(fake.url)
    found = find_build(client, TARGET, "d-turn1-abc123")
    assert found is not None and found.id == started.build_id
    assert find_build(client, TARGET, "d-other-000000") is None
    assert cancel_build(client, "my-project", "us-central1", started.build_id)
    assert fake.builds[started.build_id].data["status"] == "CANCELLED"


HELD = {"notify_topic": "projects/my-project/topics/cloud-builds", "hold_notifications": True}


def test_the_notified_states_rank_in_order(tmp_path: Path) -> None:
    with FakeGcp(**HELD) as fake:  # type: ignore[arg-type]
        started = start(fake, tmp_path)
        while fake.advance(started.build_id)["status"] != "SUCCESS":
            pass
        builds = [Build.model_validate(s) for s in fake.held]
    assert [(b.status, reached(b)) for b in builds] == [
        ("QUEUED", 1),
        ("WORKING", 2),
        ("WORKING", 3),
        ("WORKING", 4),
        ("WORKING", 5),
        ("SUCCESS", 5),
    ]
    assert [s.stage for s in stages(builds[-1])] == [
        "queued",
        "registry",
        "building",
        "pushing",
        "deploying",
    ]
    percents = [s.percent for s in stages(builds[-1])]
    assert percents == sorted(set(percents))
    assert outcome(builds[-1]) == "succeeded" and outcome(builds[2]) is None
    assert service_url(builds[-1]) == fake_url("hello")


def test_a_failed_build_says_where(tmp_path: Path) -> None:
    with FakeGcp(fail_build=True, failing_step=2, **HELD) as fake:  # type: ignore[arg-type]
        started = start(fake, tmp_path)
        data: dict[str, Any] = {}
        for _ in range(10):
            data = fake.advance(started.build_id)
        build = Build.model_validate(data)
    assert outcome(build) == "failed" and reached(build) == 4
    assert service_url(build) is None


def test_a_url_output_that_is_not_a_url_is_ignored() -> None:
    build = Build.model_validate(
        {
            "id": "b1",
            "status": "SUCCESS",
            "steps": [{"id": "deploy", "status": "SUCCESS"}],
            "results": {"buildStepOutputs": [base64.b64encode(b"oops: not a url").decode()]},
        }
    )
    assert service_url(build) is None


@pytest.mark.parametrize(
    "bad",
    [{"project": "X"}, {"region": "moon"}, {"service": "Hello_World"}, {"service": "-x"}],
)
def test_target_is_validated(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        CloudRunTarget.model_validate({**TARGET.model_dump(), **bad})


def test_result_is_json_serialisable(fake: FakeGcp, tmp_path: Path) -> None:
    json.dumps(start(fake, tmp_path).model_dump(mode="json"))


def test_the_fake_moves_builds_by_itself_for_a_local_stack(tmp_path: Path) -> None:
    with FakeGcp(**HELD, auto_advance_s=0.01) as fake:  # type: ignore[arg-type]
        started = start(fake, tmp_path)
        deadline = time.monotonic() + 30
        while not fake.held or fake.held[-1]["status"] != "SUCCESS":
            assert time.monotonic() < deadline, fake.held
            time.sleep(0.01)
    assert [b["status"] for b in fake.held] == ["QUEUED"] + ["WORKING"] * 4 + ["SUCCESS"]
    assert all(b["id"] == started.build_id for b in fake.held)
