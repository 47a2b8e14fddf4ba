"""The offline schema check of infra/ (scripts/check_infra_schema.py), tried on broken files.

The schema is read from the npm packages `@cdktf/provider-google(-beta)` that `make lint`
installs from package-lock.json (no registry is reached from here).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"

pytestmark = pytest.mark.skipif(
    not (ROOT / "node_modules" / "@cdktf" / "provider-google-beta" / ".jsii").is_file(),
    reason="needs node_modules from package-lock.json (make lint installs it: npm ci)",
)


def load_script(name: str) -> ModuleType:
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


check = load_script("check_infra_schema")
schema_mod = load_script("provider_schema")

VERSIONS = """
terraform {
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50.0"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.50.0"
    }
  }
}
"""

GOOD = """
resource "google_pubsub_subscription" "ok" {
  name  = "s"
  topic = "t"
  push_config {
    push_endpoint = "https://example.com"
    oidc_token {
      service_account_email = "a@b.iam.gserviceaccount.com"
    }
  }
  retry_policy {
    minimum_backoff = "10s"
  }
  lifecycle {
    create_before_destroy = true
  }
}

resource "google_cloud_run_v2_service" "ok" {
  name     = "edge"
  location = "us-central1"
  template {
    containers {
      image = "x"
      dynamic "env" {
        for_each = { A = "1" }
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }
}

resource "google_project_service_identity" "ok" {
  provider = google-beta
  service  = "pubsub.googleapis.com"
}
"""


def problems_in(tmp_path: Path, text: str, versions: str = VERSIONS) -> list[str]:
    module = tmp_path / "mod"
    module.mkdir(exist_ok=True)
    (module / "main.tf").write_text(textwrap.dedent(text))
    (module / "versions.tf").write_text(versions)
    return [str(p) for p in check.check([module])]


def test_the_repository_infra_passes() -> None:
    problems = check.check([ROOT / "infra"])
    assert problems == [], "\n".join(map(str, problems))


def test_a_correct_file_passes(tmp_path: Path) -> None:
    assert problems_in(tmp_path, GOOD) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # An argument the resource does not have.
        (
            'resource "google_pubsub_topic" "t" {\n  name = "t"\n  colour = "red"\n}\n',
            "google_pubsub_topic.t: colour: not an argument or block of google_pubsub_topic",
        ),
        # A real argument in the wrong place, with where it belongs.
        (
            'resource "google_pubsub_subscription" "s" {\n  name = "s"\n  topic = "t"\n'
            '  oidc_token {\n    service_account_email = "a"\n  }\n}\n',
            "oidc_token: not an argument or block of google_pubsub_subscription (google); "
            "it belongs in push_config",
        ),
        # A nested argument that does not exist.
        (
            'resource "google_pubsub_subscription" "s" {\n  name = "s"\n  topic = "t"\n'
            '  push_config {\n    push_endpoint = "x"\n    audience = "y"\n  }\n}\n',
            "push_config.audience: not an argument or block of push_config",
        ),
        # An argument written as a block.
        (
            'resource "google_pubsub_topic" "t" {\n  name = "t"\n  labels {\n  }\n}\n',
            "labels: is an argument",
        ),
        # A block written as an argument.
        (
            'resource "google_pubsub_subscription" "s" {\n  name = "s"\n  topic = "t"\n'
            '  retry_policy = { minimum_backoff = "10s" }\n}\n',
            "retry_policy: is a block",
        ),
        # A single block twice.
        (
            'resource "google_pubsub_subscription" "s" {\n  name = "s"\n  topic = "t"\n'
            "  retry_policy {\n  }\n  retry_policy {\n  }\n}\n",
            "retry_policy: may be given once, not 2 times",
        ),
        # A missing required argument, at the top and inside a block.
        (
            'resource "google_pubsub_subscription" "s" {\n  name = "s"\n}\n',
            "google_pubsub_subscription.s: missing required argument topic",
        ),
        (
            'resource "google_pubsub_subscription" "s" {\n  name = "s"\n  topic = "t"\n'
            "  push_config {\n  }\n}\n",
            "push_config: missing required argument push_endpoint",
        ),
        # A missing required block.
        (
            'resource "google_cloud_run_v2_service" "e" {\n  name = "e"\n  location = "l"\n}\n',
            "missing required block template",
        ),
        # A dynamic block of something that is not a block.
        (
            'resource "google_cloud_run_v2_service" "e" {\n  name = "e"\n  location = "l"\n'
            '  template {\n    containers {\n      image = "x"\n      dynamic "envs" {\n'
            "        for_each = []\n        content {\n        }\n      }\n    }\n  }\n}\n",
            "template.containers.envs: not an argument or block of template.containers",
        ),
        # A google-beta-only resource on the google provider.
        (
            'resource "google_project_service_identity" "p" {\n  service = "x"\n}\n',
            "exists only in google-beta: set provider = google-beta",
        ),
        (
            'resource "google_made_up_thing" "x" {\n}\n',
            "no such resource type in google 6.50.0",
        ),
        (
            'data "google_project" "p" {\n  project_number = 1\n}\n',
            "data.google_project.p: project_number: not an argument or block",
        ),
        (
            'provider "google" {\n  project = "p"\n  zonee = "z"\n}\n',
            'provider "google": zonee: not an argument or block',
        ),
    ],
    ids=lambda v: v[:40] if isinstance(v, str) else v,
)
def test_a_broken_file_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    problems = problems_in(tmp_path, text)
    assert any(expected in p for p in problems), problems


def test_the_provider_version_must_be_the_schemas(tmp_path: Path) -> None:
    loose = VERSIONS.replace('"~> 6.50.0"', '"~> 6.40"', 1)
    problems = problems_in(tmp_path, GOOD, versions=loose)
    assert any('version must be "~> 6.50.0"' in p and "not ~> 6.40" in p for p in problems)
    undeclared = VERSIONS.split("    google-beta = {")[0] + "  }\n}\n"
    problems = problems_in(tmp_path, GOOD, versions=undeclared)
    assert any("uses google-beta without declaring it" in p for p in problems), problems


def test_the_command_fails_on_a_broken_file_and_names_it(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "main.tf").write_text('resource "google_pubsub_topic" "t" {\n  nam = "t"\n}\n')
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "check_infra_schema.py"), str(broken)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "main.tf:1: google_pubsub_topic.t: nam: not an argument" in result.stderr
    assert "missing required argument name" in result.stderr
    ok = subprocess.run(
        [sys.executable, str(SCRIPTS / "check_infra_schema.py")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "no problems" in ok.stdout


def test_the_schema_is_the_providers() -> None:
    google: dict[str, Any] = schema_mod.load("google")
    beta: dict[str, Any] = schema_mod.load("google-beta")
    assert google["provider_version"] == beta["provider_version"] == "6.50.0"
    sub = google["structs"][google["resources"]["google_pubsub_subscription"]]
    assert sub["attrs"]["name"] is True and sub["attrs"]["topic"] is True
    assert sub["attrs"]["ack_deadline_seconds"] is False
    required, single, push = sub["blocks"]["push_config"]
    assert (required, single) == (False, True)
    assert google["structs"][push]["attrs"]["push_endpoint"] is True
    assert "google_project_service_identity" not in google["resources"]
    assert "google_project_service_identity" in beta["resources"]
    run = google["structs"][google["resources"]["google_cloud_run_v2_service"]]
    assert run["blocks"]["template"][0] is True  # required
    template = google["structs"][run["blocks"]["template"][2]]
    assert template["blocks"]["containers"][1] is False  # repeats
    # A field renamed in the bindings (build -> buildAttribute) keeps its HCL name.
    trigger = google["structs"][google["resources"]["google_cloudbuild_trigger"]]
    assert "build" in trigger["blocks"]
