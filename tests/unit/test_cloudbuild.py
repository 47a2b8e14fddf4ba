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
CI_IMAGE = "deploychat-ci:$BUILD_ID"
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
    # The CI image, built in this build from the repository's ci/Dockerfile.
    assert test["name"] == lint["name"] == CI_IMAGE
    assert "ci-image" in predecessors(steps().index(test))


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
        if name == CI_IMAGE:
            continue  # built in this build from ci/Dockerfile, whose bases are pinned below
        assert re.search(r":[0-9][\w.\-]*$", name), f"{name} is not pinned to a version"
    text = (ROOT / "cloudbuild.yaml").read_text()
    assert ":latest" not in text
    for base in re.findall(r"(?m)^FROM\s+(\S+)", ci_dockerfile()):
        assert re.search(r":[0-9][\w.\-]*(@sha256:[0-9a-f]{64})?$", base), base
    # The same uv as the edge image's (the one that wrote uv.lock).
    uv = re.search(r"ghcr\.io/astral-sh/uv:([\d.]+)", ci_dockerfile())
    dockerfile = (ROOT / "services" / "ws_edge" / "Dockerfile").read_text()
    assert uv and f"ghcr.io/astral-sh/uv:{uv.group(1)}" in dockerfile


# ---------------------------------------------------------------- the tools `make test` calls


def ci_dockerfile() -> str:
    return (ROOT / "ci" / "Dockerfile").read_text()


def makefile_recipes() -> dict[str, tuple[list[str], list[str]]]:
    """target -> (prerequisites, recipe lines), from the Makefile."""
    rules: dict[str, tuple[list[str], list[str]]] = {}
    current: str | None = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith("\t") and current is not None:
            rules[current][1].append(line.strip().lstrip("@"))
            continue
        m = re.match(r"^([A-Za-z$()._/-]+):(?!=)\s*(.*)$", line)
        if m and not line.startswith((".PHONY", "export")):
            current = m.group(1)
            rules.setdefault(current, ([], []))[0].extend(m.group(2).split())
        elif not line.startswith("\t"):
            current = None
    return rules


def make_test_commands() -> str:
    """Every recipe line `make test` runs, its prerequisites' included."""
    rules = makefile_recipes()
    seen: set[str] = set()
    lines: list[str] = []

    def visit(target: str) -> None:
        if target in seen or target not in rules:
            return
        seen.add(target)
        prereqs, recipe = rules[target]
        for p in prereqs:
            visit(p)
        lines.extend(recipe)

    visit("test")
    assert {"bootstrap", "lint", "browser", "js-unit"} <= seen
    return "\n".join(lines)


# What each tool `make test` needs is, and how the CI image shows it provides it.
TOOLS: dict[str, str] = {
    "python3.12": r"(?m)^FROM python:3\.12[\d.]*-",
    "make": r"apt-get install[^\n]*(\\\n[^\n]*)*\bmake\b",
    "git": r"apt-get install[^\n]*(\\\n[^\n]*)*\bgit\b",
    "chromium": r"apt-get install[^\n]*(\\\n[^\n]*)*\bchromium\b",
    "java": r"apt-get install[^\n]*(\\\n[^\n]*)*\bopenjdk-17-jdk-headless\b",
    "mvn": r"apt-get install[^\n]*(\\\n[^\n]*)*\bmaven\b",
    "node": r"COPY --from=node /usr/local/bin/node ",
    "npm": r"ln -s \.\./lib/node_modules/npm/bin/npm-cli\.js /usr/local/bin/npm",
    "uv": r"COPY --from=uv /uv /usr/local/bin/uv",
    "terraform": r"COPY --from=terraform /bin/terraform /usr/local/bin/terraform",
    "gcloud emulators": r"COPY --from=gcloud /usr/lib/google-cloud-sdk /usr/lib/google-cloud-sdk",
}


def test_make_test_calls_only_tools_the_ci_image_provides() -> None:
    commands = make_test_commands()
    # What the recipes call directly ...
    needed = set()
    if "$(PY)" in commands or "$(PYTHON)" in commands:
        needed.add("python3.12")
    if "$(UV)" in commands:
        needed.add("uv")
    for tool in ("node", "npm", "chromium", "git"):
        if re.search(rf"\b{tool}\b", commands):
            needed.add(tool)
    if "scripts/check_infra.sh" in commands:
        script = (ROOT / "scripts" / "check_infra.sh").read_text()
        needed |= {"terraform", "npm"} & {t for t in ("terraform", "npm") if t in script}
    # ... and what the tests start: the emulators (gcloud, on Java), the Auth emulator
    # (firebase-tools through npm ci, on Node), and git for the sample repositories.
    stack = (ROOT / "devstack" / "emulators.py").read_text()
    assert '"emulators"' in stack and "npm" in stack
    needed |= {"gcloud emulators", "java", "node", "npm", "git", "make"}
    # A test that finds its tool missing skips, which would hide it in CI: the image has them.
    for path in (ROOT / "tests").rglob("*.py"):
        for tool in re.findall(r'skipif\(shutil\.which\("(\w+)"\) is None', path.read_text()):
            needed.add({"gcloud": "gcloud emulators"}.get(tool, tool))
    assert needed >= {"python3.12", "uv", "node", "npm", "chromium", "terraform"}, needed
    docker = ci_dockerfile()
    missing = {tool for tool in needed if tool not in TOOLS or not re.search(TOOLS[tool], docker)}
    assert not missing, f"ci/Dockerfile does not provide {sorted(missing)}"
    # And the image checks them as it is built, so a missing one fails the build early.
    check = docker[docker.rindex("RUN ") :]
    for probe in (
        "python3.12 --version",
        "java -version",
        "mvn --version",
        "node --version",
        "npm --version",
        "git --version",
        "chromium --version",
        "uv --version",
        "terraform version",
        "gcloud --version",
        "pubsub-emulator",
        "cloud-firestore-emulator",
    ):
        assert probe in check, probe


def test_the_lint_step_installs_both_lock_files_on_3_12() -> None:
    lint = step_text(step("install-lint"))
    assert "uv sync --frozen --all-extras --python python3.12" in lint
    assert "npm ci" in lint  # firebase-tools and the schema check's packages
    build = step_text(step("ci-image"))
    assert "--file=ci/Dockerfile" in build and f"--tag={CI_IMAGE}" in build
    assert "3.11" not in (ROOT / "cloudbuild.yaml").read_text()


def test_the_edge_image_vendors_the_page_libraries_and_runs_3_12() -> None:
    dockerfile = (ROOT / "services" / "ws_edge" / "Dockerfile").read_text()
    stage = dockerfile[dockerfile.index("AS vendor") : dockerfile.index("AS deps")]
    assert re.search(r"FROM node:20\.[\d.]+-bookworm-slim AS vendor", dockerfile)
    assert "npm ci --omit=dev" in stage
    assert "node scripts/vendor_static.mjs --out /src/vendor" in stage
    assert "COPY --from=vendor /src/vendor/ /app/services/ws_edge/edge/static/vendor/" in dockerfile
    assert re.search(r"(?m)^FROM python:3\.12\.", dockerfile)
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    for needed in ("!package.json", "!package-lock.json", "!scripts/vendor_static.mjs"):
        assert needed in ignore, needed
    assert "services/ws_edge/edge/static/vendor" in ignore  # made in the image, never copied
    assert (ROOT / "scripts" / "vendor_static.mjs").is_file()
    # The functions run the same Python.
    assert '"python312"' in (ROOT / "infra/modules/agent_function/variables.tf").read_text()
