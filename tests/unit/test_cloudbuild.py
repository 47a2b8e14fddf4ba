"""cloudbuild.yaml, read as Cloud Build reads it: substitutions, step order, images."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]

# Substitutions Cloud Build provides itself.
BUILT_INS = {
    "PROJECT_ID",
    "PROJECT_NUMBER",
    "BUILD_ID",
    "LOCATION",
    "TRIGGER_NAME",
    "TRIGGER_BUILD_CONFIG_PATH",
    "COMMIT_SHA",
    "SHORT_SHA",
    "REVISION_ID",
    "REPO_NAME",
    "REPO_FULL_NAME",
    "BRANCH_NAME",
    "TAG_NAME",
    "REF_NAME",
    "SERVICE_ACCOUNT",
    "SERVICE_ACCOUNT_EMAIL",
}
# Steps that change something outside the build.
DEPLOY_MARKERS = ("docker push", "terraform apply", "gcloud run deploy", "gcloud functions deploy")


@cache
def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
    return loaded


def steps() -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = config()["steps"]
    return result


def step(step_id: str) -> dict[str, Any]:
    return next(s for s in steps() if s.get("id") == step_id)


def step_text(s: dict[str, Any]) -> str:
    return " ".join([s.get("entrypoint", ""), *map(str, s.get("args", []))])


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [x for v in value for x in strings(v)]
    if isinstance(value, dict):
        return [x for k, v in value.items() if k != "substitutions" for x in strings(v)]
    return []


def substitutions_used() -> set[str]:
    used: set[str] = set()
    for text in strings(config()):
        text = text.replace("$$", "")  # an escaped dollar, left to the shell
        used |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
        used |= set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", text))
    return used


def predecessors(index: int) -> set[str]:
    """Every step that must finish before steps[index] starts (Cloud Build's waitFor rules:
    none given waits for all earlier steps; "-" starts at once)."""
    all_steps = steps()
    ids = [s.get("id", f"#{i}") for i, s in enumerate(all_steps)]
    wait = all_steps[index].get("waitFor")
    direct = set(ids[:index]) if wait is None else {w for w in wait if w != "-"}
    result = set(direct)
    for dep in direct:
        assert dep in ids, f"waitFor names an unknown step {dep}"
        result |= predecessors(ids.index(dep))
    return result


def test_every_used_substitution_is_defined() -> None:
    defined = set(config()["substitutions"])
    for name in defined:
        assert name.startswith("_"), f"user substitution {name} must start with _"
    used = substitutions_used()
    unknown = used - defined - BUILT_INS
    assert not unknown, f"undefined substitutions: {sorted(unknown)}"
    # With MUST_MATCH, a defined substitution that is never used fails the build too.
    assert config()["options"]["substitutionOption"] == "MUST_MATCH"
    assert defined <= used, f"unused substitutions: {sorted(defined - used)}"
    assert {"_ENV", "_REGION", "PROJECT_ID"} <= used


def test_environment_substitution_names_a_root() -> None:
    env = config()["substitutions"]["_ENV"]
    assert (ROOT / "infra" / "environments" / env / "main.tf").is_file()
    assert "infra/environments/${_ENV}" in step_text(step("deploy"))


def test_steps_have_unique_ids() -> None:
    ids = [s.get("id") for s in steps()]
    assert all(ids) and len(ids) == len(set(ids))


def test_lint_then_tests_against_the_emulators() -> None:
    lint = step("install-lint")
    assert "uv sync --frozen" in step_text(lint)
    assert "make lint" in step_text(lint)
    test = step("test")
    assert "make test" in step_text(test)
    assert "install-lint" in predecessors(steps().index(test))
    # An image with gcloud's emulators and Java.
    assert "google-cloud-cli" in test["name"] and "emulators" in test["name"]


def is_deploy(s: dict[str, Any]) -> bool:
    docker_push = s["name"].startswith("gcr.io/cloud-builders/docker") and [
        str(a) for a in s.get("args", [])
    ][:1] == ["push"]
    return docker_push or any(m in step_text(s) for m in DEPLOY_MARKERS)


def test_no_deploy_before_the_tests_pass() -> None:
    deploys = [i for i, s in enumerate(steps()) if is_deploy(s)]
    assert {steps()[i]["id"] for i in deploys} >= {"push-edge-image", "deploy"}
    for i in deploys:
        assert "test" in predecessors(i), f"{steps()[i]['id']} can run before the tests"
    # What comes after a deploy waits for it too.
    assert "deploy" in predecessors(steps().index(step("edge-url")))
    assert "terraform output -raw edge_url" in step_text(step("edge-url"))


def built_images() -> set[str]:
    images = set()
    for s in steps():
        args = [str(a) for a in s.get("args", [])]
        if s["name"].startswith("gcr.io/cloud-builders/docker") and args[:1] == ["build"]:
            for i, a in enumerate(args):
                if a.startswith("--tag="):
                    images.add(a.removeprefix("--tag="))
                elif a in ("-t", "--tag"):
                    images.add(args[i + 1])
    return images


def test_pushed_images_are_the_built_ones() -> None:
    built = built_images()
    assert built, "no image is built"
    pushed = set()
    for s in steps():
        args = [str(a) for a in s.get("args", [])]
        if s["name"].startswith("gcr.io/cloud-builders/docker") and args[:1] == ["push"]:
            pushed.add(args[1])
    assert pushed == built
    assert set(config()["images"]) == built
    # The edge image from its Dockerfile, with the repository root as the context.
    build = step("build-edge-image")
    assert "--file=services/ws_edge/Dockerfile" in build["args"]
    assert build["args"][-1] == "."
    # Terraform deploys exactly that image.
    (image,) = built
    assert f'-var="edge_image={image}"' in step_text(step("deploy"))
    # ... into the repository the Terraform makes (deploychat-<env> in the region).
    assert image.startswith("${_REGION}-docker.pkg.dev/$PROJECT_ID/deploychat-${_ENV}/")


def test_function_source_is_staged_by_the_script() -> None:
    stage = step_text(step("stage-function"))
    assert "scripts/stage_function.py --out build/function --zip build/function.zip" in stage
    deploy = step_text(step("deploy"))
    assert '-var="function_source_zip=/workspace/build/function.zip"' in deploy
    assert "stage-function" in predecessors(steps().index(step("deploy")))
    assert "-backend-config=" in deploy and "${_TF_STATE_BUCKET}" in deploy


def test_step_images_are_pinned() -> None:
    for s in steps():
        name = s["name"]
        if name.startswith("gcr.io/cloud-builders/"):
            continue  # Google's builders, kept current by Cloud Build
        assert re.search(r":[0-9][\w.\-]*$", name), f"{name} is not pinned to a version"
    text = (ROOT / "cloudbuild.yaml").read_text()
    assert ":latest" not in text
    uv = re.search(r"ghcr\.io/astral-sh/uv:([\d.]+)", text)
    dockerfile = (ROOT / "services" / "ws_edge" / "Dockerfile").read_text()
    assert uv and f"ghcr.io/astral-sh/uv:{uv.group(1)}" in dockerfile
