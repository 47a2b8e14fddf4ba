"""What a Cloud Build notification says about a deployment: its stages, in order, and the end.

A deployment's build always goes through the same ordered stages: queued, then one per step
(registry, building, pushing, deploying). A notification says how far the build has got (its
*rank* in that order); notifications come at least once and in any order, so the handler emits
every stage between the furthest one already shown and this one, and nothing for a notification
that is not further. So the session shows each stage once, in order, whatever arrives when.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deploychat.errors import ProtocolError

from .tools.cloud_run_deploy import (
    DEPLOYMENT_KEY,
    SESSION_KEY,
    STEP_BUILD,
    STEP_DEPLOY,
    STEP_PUSH,
    STEP_REGISTRY,
)

Outcome = Literal["succeeded", "failed", "cancelled", "declined"]

_QUEUED = {"STATUS_UNKNOWN", "PENDING", "QUEUED"}
_FAILED = {"FAILURE", "INTERNAL_ERROR", "TIMEOUT", "EXPIRED"}
TERMINAL = {"SUCCESS", "CANCELLED", *_FAILED}

QUEUED_PERCENT, FIRST_STEP_PERCENT, LAST_STEP_PERCENT = 25, 30, 95

_STEP_STAGES = {
    STEP_REGISTRY: ("registry", "Making sure the Artifact Registry repository exists"),
    STEP_BUILD: ("building", "Building the image"),
    STEP_PUSH: ("pushing", "Pushing the image to Artifact Registry"),
    STEP_DEPLOY: ("deploying", "Deploying a new revision to Cloud Run"),
}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class BuildStep(_Lenient):
    id: str = ""
    name: str = ""
    status: str = "STATUS_UNKNOWN"


class FailureInfo(_Lenient):
    detail: str = ""


class Results(_Lenient):
    build_step_outputs: list[str] = Field(default_factory=list, alias="buildStepOutputs")


class Build(_Lenient):
    """The fields of Cloud Build's Build resource (REST JSON) that the handler reads."""

    id: str
    status: str = "STATUS_UNKNOWN"
    steps: list[BuildStep] = Field(default_factory=list)
    substitutions: dict[str, str] = Field(default_factory=dict)
    results: Results = Field(default_factory=Results)
    log_url: str = Field(default="", alias="logUrl")
    status_detail: str = Field(default="", alias="statusDetail")
    failure_info: FailureInfo = Field(default_factory=FailureInfo, alias="failureInfo")

    @property
    def session_id(self) -> str | None:
        return self.substitutions.get(SESSION_KEY)

    @property
    def deployment_id(self) -> str | None:
        return self.substitutions.get(DEPLOYMENT_KEY)


def build_from_pubsub(message: Any) -> Build:
    """The Build in a Pub/Sub message from the `cloud-builds` topic; ProtocolError if bad."""
    if not isinstance(message, dict):
        raise ProtocolError("invalid_message", "Pub/Sub event has no message object")
    try:
        data = json.loads(base64.b64decode(message.get("data") or "", validate=True))
        build = Build.model_validate(data)
    except (binascii.Error, ValueError, ValidationError) as exc:
        raise ProtocolError("invalid_message", f"bad build notification: {exc}") from None
    attributes = message.get("attributes") or {}
    if attributes.get("buildId", build.id) != build.id:
        raise ProtocolError("invalid_message", "attribute buildId does not match the build")
    return build


@dataclass(frozen=True)
class Stage:
    rank: int
    stage: str
    percent: int
    message: str


def stages(build: Build) -> list[Stage]:
    """Every stage the deployment's build goes through, in order (rank 1, 2, ...)."""
    out = [Stage(1, "queued", QUEUED_PERCENT, "Waiting for a Cloud Build worker")]
    total = max(1, len(build.steps))
    for index, step in enumerate(build.steps):
        stage, message = _STEP_STAGES.get(step.id, (f"step-{index + 1}", step.id or step.name))
        percent = FIRST_STEP_PERCENT + (LAST_STEP_PERCENT - FIRST_STEP_PERCENT) * index // total
        out.append(Stage(index + 2, stage, percent, f"{message} (step {index + 1}/{total})"))
    return out


def reached(build: Build) -> int:
    """The rank of the furthest stage this notification shows the build has reached."""
    if build.status in _QUEUED:
        return 1
    ran = [i for i, s in enumerate(build.steps) if s.status not in _QUEUED]
    if build.status == "SUCCESS":
        return len(build.steps) + 1
    if not ran:
        # WORKING with no step started yet: the first step is about to run.
        return 2 if build.status == "WORKING" and build.steps else 1
    return max(ran) + 2


def outcome(build: Build) -> Outcome | None:
    if build.status == "SUCCESS":
        return "succeeded"
    if build.status == "CANCELLED":
        return "cancelled"
    if build.status in _FAILED:
        return "failed"
    return None


def service_url(build: Build) -> str | None:
    """What the deploy step wrote to $BUILDER_OUTPUT/output: the service's URL."""
    index = next((i for i, s in enumerate(build.steps) if s.id == STEP_DEPLOY), None)
    outputs = build.results.build_step_outputs
    if index is None or index >= len(outputs):
        return None
    try:
        url = base64.b64decode(outputs[index]).decode().strip()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return url if url.startswith("https://") and " " not in url else None


def failure_message(build: Build) -> str:
    failed = next(
        (
            f" at step {i + 1} ({s.id or s.name})"
            for i, s in enumerate(build.steps)
            if s.status in _FAILED
        ),
        "",
    )
    detail = build.failure_info.detail or build.status_detail or "no detail given"
    logs = f" Build logs: {build.log_url}" if build.log_url else ""
    return f"The Cloud Build build {build.id} ended with {build.status}{failed}: {detail}.{logs}"
