"""The Terraform under infra/, read as HCL (python-hcl2): no provider, no account, no network.

`terraform validate` needs the Google provider, which cannot be downloaded here, so these tests
also do the part of its job that matters most for a hand-written configuration: every var,
local, module output and resource that is referenced exists, and every module call passes
only (and all required) variables the module declares.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

from deploychat import firestore_layout
from devstack.stack import StackConfig

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MODULES = INFRA / "modules"
BOOTSTRAP = INFRA / "bootstrap"
ENVIRONMENTS = ("dev", "prod")
FORBIDDEN_ROLES = ("roles/owner", "roles/editor")


# ---------------------------------------------------------------- HCL helpers


def clean(value: Any) -> Any:
    """python-hcl2 keeps quotes on strings and marks blocks; drop both."""
    if isinstance(value, dict):
        return {
            clean_key(k): clean(v)
            for k, v in value.items()
            if k not in ("__is_block__", "__comments__", "__inline_comments__")
        }
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def clean_key(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == '"' else key


@dataclass
class Dir:
    """One Terraform module directory (a module or an environment root)."""

    path: Path
    text: str = ""
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    data: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)

    def resource(self, rtype: str, name: str) -> dict[str, Any]:
        return self.resources[(rtype, name)]

    def of_type(self, rtype: str) -> dict[str, dict[str, Any]]:
        return {n: body for (t, n), body in self.resources.items() if t == rtype}

    def default(self, variable: str) -> Any:
        return self.variables[variable].get("default")


@cache
def load(path: Path) -> Dir:
    d = Dir(path)
    for tf in sorted(path.glob("*.tf")):
        d.text += tf.read_text() + "\n"
        parsed = clean(hcl2.loads(tf.read_text()))
        for block in parsed.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    d.resources[(rtype, name)] = body
        for block in parsed.get("data", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    d.data[(rtype, name)] = body
        for block in parsed.get("variable", []):
            d.variables.update(block)
        for block in parsed.get("output", []):
            d.outputs.update(block)
        for block in parsed.get("locals", []):
            d.locals.update(block)
        for block in parsed.get("module", []):
            d.modules.update(block)
        d.terraform.extend(parsed.get("terraform", []))
    return d


def module_dirs() -> list[Path]:
    return sorted(p for p in MODULES.iterdir() if p.is_dir())


def all_dirs() -> list[Path]:
    return module_dirs() + [INFRA / "environments" / env for env in ENVIRONMENTS] + [BOOTSTRAP]


def one(blocks: Any) -> dict[str, Any]:
    """A nested block (a list of one dict in python-hcl2's output)."""
    assert isinstance(blocks, list) and len(blocks) == 1, blocks
    result: dict[str, Any] = blocks[0]
    return result


def tf_files() -> Iterator[Path]:
    yield from sorted(INFRA.rglob("*.tf"))


# ---------------------------------------------------------------- layout and hygiene


def test_layout_modules_and_environments() -> None:
    names = {p.name for p in module_dirs()}
    assert {"messaging", "agent_function", "edge_service", "data", "apis", "registry"} <= names
    for env in ENVIRONMENTS:
        root = load(INFRA / "environments" / env)
        assert root.modules["deploychat"]["source"] == "../../modules/stack"
        backend = one(root.terraform)["backend"]
        # The bucket comes from `terraform init -backend-config=...`, never from the code.
        assert backend == [{"gcs": {}}]
        assert {"edge_url", "turns_topic", "function_name"} <= set(root.outputs)


@pytest.mark.parametrize("path", all_dirs(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_variable_has_type_and_description(path: Path) -> None:
    d = load(path)
    for name, var in d.variables.items():
        assert var.get("type"), f"{path.name}: variable {name} has no type"
        assert var.get("description"), f"{path.name}: variable {name} has no description"
    for name, out in d.outputs.items():
        assert out.get("description"), f"{path.name}: output {name} has no description"


@pytest.mark.parametrize("path", all_dirs(), ids=lambda p: str(p.relative_to(INFRA)))
def test_references_resolve(path: Path) -> None:
    """What `terraform validate` would catch first: references to undeclared things."""
    d = load(path)
    # Comments mention names freely; only code counts.
    code = re.sub(r"(?m)#.*$", "", d.text)
    for name in set(re.findall(r"\bvar\.([a-z0-9_]+)", code)):
        assert name in d.variables, f"{path.name}: var.{name} is not declared"
    for name in set(re.findall(r"\blocal\.([a-z0-9_]+)", code)):
        assert name in d.locals, f"{path.name}: local.{name} is not declared"
    for rtype, name in set(re.findall(r"(?<![\w.\"])(google_[a-z0-9_]+)\.([a-z0-9_]+)", code)):
        assert (rtype, name) in d.resources, f"{path.name}: {rtype}.{name} is not declared"
    for rtype, name in set(re.findall(r"\bdata\.(google_[a-z0-9_]+)\.([a-z0-9_]+)", code)):
        assert (rtype, name) in d.data, f"{path.name}: data.{rtype}.{name} is not declared"
    for mod, out in set(re.findall(r"\bmodule\.([a-z0-9_]+)\.([a-z0-9_]+)", code)):
        assert mod in d.modules, f"{path.name}: module.{mod} is not declared"
        target = load((path / d.modules[mod]["source"]).resolve())
        assert out in target.outputs, f"{path.name}: module.{mod} has no output {out}"


@pytest.mark.parametrize("path", all_dirs(), ids=lambda p: str(p.relative_to(INFRA)))
def test_module_calls_match_module_variables(path: Path) -> None:
    meta = {"source", "depends_on", "count", "for_each", "providers", "version"}
    for name, call in load(path).modules.items():
        target = load((path / call["source"]).resolve())
        passed = set(call) - meta
        unknown = passed - set(target.variables)
        assert not unknown, f"{path.name}: module {name} gets undeclared {sorted(unknown)}"
        required = {v for v, body in target.variables.items() if "default" not in body}
        missing = required - passed
        assert not missing, f"{path.name}: module {name} misses {sorted(missing)}"


def test_terraform_fmt() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", str(INFRA)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"not formatted: {result.stdout}{result.stderr}"


def test_checkov_skips_carry_a_reason() -> None:
    paths = [*tf_files(), ROOT / "services" / "ws_edge" / "Dockerfile"]
    for path in paths:
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                assert re.search(r"#\s*checkov:skip=CKV2?_[A-Z]+_\d+:\S.{10,}", line), (
                    f"{path}: a checkov skip without a reason: {line.strip()}"
                )


# ---------------------------------------------------------------- the edge on Cloud Run


def edge() -> Dir:
    return load(MODULES / "edge_service")


def edge_template() -> dict[str, Any]:
    return one(edge().resource("google_cloud_run_v2_service", "edge")["template"])


def edge_container() -> dict[str, Any]:
    return one(edge_template()["containers"])


def test_edge_socket_settings() -> None:
    d = edge()
    template = edge_template()
    assert template["session_affinity"] is True
    assert template["timeout"] == "${var.request_timeout_seconds}s"
    assert d.default("request_timeout_seconds") == 3600
    assert template["max_instance_request_concurrency"] == "${var.concurrency}"
    assert d.default("concurrency") == 1000
    scaling = one(template["scaling"])
    assert scaling["min_instance_count"] == "${var.min_instances}"
    assert scaling["max_instance_count"] == "${var.max_instances}"
    resources = one(edge_container()["resources"])
    assert resources["cpu_idle"] is False  # open sockets need the CPU between requests
    service = d.resource("google_cloud_run_v2_service", "edge")
    assert service["ingress"] == "INGRESS_TRAFFIC_ALL"
    assert template["service_account"] == "${var.service_account}"


def test_edge_startup_probe_on_healthz() -> None:
    probe = one(edge_container()["startup_probe"])
    assert one(probe["http_get"])["path"] == "/healthz"
    # The app really serves it.
    app = (ROOT / "services" / "ws_edge" / "edge" / "app.py").read_text()
    assert '@app.get("/healthz")' in app


def test_edge_min_instances_per_environment() -> None:
    assert load(INFRA / "environments" / "dev").default("edge_min_instances") == 0
    assert load(INFRA / "environments" / "prod").default("edge_min_instances") == 1
    for env in ENVIRONMENTS:
        root = load(INFRA / "environments" / env)
        assert "edge_max_instances" in root.variables


def test_edge_settings_are_the_ones_it_reads() -> None:
    env = edge().locals["environment"]
    for name in (
        "DEPLOYCHAT_PROJECT_ID",
        "DEPLOYCHAT_FIRESTORE_DATABASE",
        "DEPLOYCHAT_LOG_FORMAT",
        "DEPLOYCHAT_LOG_LEVEL",
        "DEPLOYCHAT_SESSION_TTL_DAYS",
        "DEPLOYCHAT_TURNS_TOPIC",
        "DEPLOYCHAT_MAX_FRAME_BYTES",
        "DEPLOYCHAT_PUBLISH_TIMEOUT_S",
    ):
        assert f"{name} =" in env, name
    # A JSON list, as pydantic-settings reads list fields.
    assert "DEPLOYCHAT_ALLOWED_ORIGINS = jsonencode(var.allowed_origins)" in env
    assert edge().variables["allowed_origins"]["type"] == "${list(string)}"
    # Sign-in in every environment, with the web configuration the page signs in with.
    assert 'DEPLOYCHAT_AUTH_MODE = "firebase"' in env
    assert "DEPLOYCHAT_FIREBASE_API_KEY = var.sign_in_browser_key" in env
    assert "DEPLOYCHAT_FIREBASE_AUTH_DOMAIN = var.firebase_auth_domain" in env
    stack = load(MODULES / "stack").modules["edge_service"]
    assert stack["sign_in_browser_key"] == "${module.identity.api_key}"
    assert stack["firebase_auth_domain"] == "${module.identity.auth_domain}"
    assert "auth_mode" not in load(INFRA / "environments" / "dev").variables
    # PORT is Cloud Run's to set.
    assert "PORT =" not in env.replace("_PORT", "")


# ---------------------------------------------------------------- the turns delivery


def messaging() -> Dir:
    return load(MODULES / "messaging")


def test_delivery_matches_devstack() -> None:
    """Production delivers turns the way `make dev` does (devstack/stack.py)."""
    d = messaging()
    local = StackConfig()
    sub = d.resource("google_pubsub_subscription", "to_agent")
    assert sub["enable_message_ordering"] is True
    assert sub["ack_deadline_seconds"] == "${var.ack_deadline_seconds}"
    assert d.default("ack_deadline_seconds") == local.ack_deadline_s == 600
    retry = one(sub["retry_policy"])
    assert retry["minimum_backoff"] == "${var.min_backoff_seconds}s"
    assert retry["maximum_backoff"] == "${var.max_backoff_seconds}s"
    assert d.default("min_backoff_seconds") == local.min_backoff_s == 10
    assert d.default("max_backoff_seconds") == local.max_backoff_s == 600
    dead = one(sub["dead_letter_policy"])
    assert dead["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert dead["max_delivery_attempts"] == "${var.max_delivery_attempts}"
    assert d.default("max_delivery_attempts") == local.max_delivery_attempts == 5
    # Dead letters are held by a pull subscription (no push_config), as in devstack.
    hold = d.resource("google_pubsub_subscription", "dead_letter_hold")
    assert hold["topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert "push_config" not in hold
    # Names follow devstack's: <topic>-to-agent, <topic>-dead-letter, <topic>-dead-letter-hold.
    assert sub["name"].endswith("-turns-to-agent")
    assert d.resource("google_pubsub_topic", "dead_letter")["name"].endswith("-turns-dead-letter")


def test_push_goes_to_the_function_with_an_oidc_token() -> None:
    d = messaging()
    sub = d.resource("google_pubsub_subscription", "to_agent")
    push = one(sub["push_config"])
    assert push["push_endpoint"] == "${local.push_endpoint}"
    # functions-framework takes the CloudEvent's source from /projects/<p>/topics/<t>.
    assert d.locals["push_endpoint"] == (
        "${var.function_uri}/projects/${var.project_id}/topics/${google_pubsub_topic.turns.name}"
    )
    # A raw (wrapped) push body: no_wrapper would hide the message from the conversion.
    assert "no_wrapper" not in push
    oidc = one(push["oidc_token"])
    assert oidc["service_account_email"] == "${var.push_service_account}"
    assert oidc["audience"] == "${var.function_uri}"
    invoker = d.resource("google_cloud_run_v2_service_iam_member", "push_invoker")
    assert invoker["role"] == "roles/run.invoker"
    assert invoker["member"] == "${local.push_member}"
    assert invoker["name"] == "${var.function_service_name}"
    # The stack wires the function's URL and service into the delivery.
    stack = load(MODULES / "stack").modules["messaging"]
    assert stack["function_uri"] == '${module.agent_function.uris["agent"]}'
    assert stack["function_service_name"] == '${module.agent_function.service_names["agent"]}'


def test_pubsub_agent_can_dead_letter() -> None:
    d = messaging()
    pub = d.resource("google_pubsub_topic_iam_member", "dead_letter_publisher")
    assert pub["role"] == "roles/pubsub.publisher"
    assert pub["member"] == "${local.pubsub_agent}"
    sub = d.resource("google_pubsub_subscription_iam_member", "dead_letter_subscriber")
    assert sub["role"] == "roles/pubsub.subscriber"
    assert "gcp-sa-pubsub.iam.gserviceaccount.com" in d.locals["pubsub_agent"]


def test_delivery_attempts_are_one_number() -> None:
    """The dead-letter max attempts and the function's DEPLOYCHAT_MAX_DELIVERY_ATTEMPTS."""
    stack = load(MODULES / "stack").modules
    assert stack["messaging"]["max_delivery_attempts"] == "${var.max_delivery_attempts}"
    assert stack["agent_function"]["max_delivery_attempts"] == "${var.max_delivery_attempts}"
    env = load(MODULES / "agent_function").locals["environment"]
    assert "DEPLOYCHAT_MAX_DELIVERY_ATTEMPTS = tostring(var.max_delivery_attempts)" in env


# ---------------------------------------------------------------- the agent function


def agent() -> Dir:
    return load(MODULES / "agent_function")


ENTRY_POINTS = {
    "agent": ("handle_turn", "cloudevent", "functions_framework.cloud_event"),
    "build-events": ("handle_build_event", "cloudevent", "functions_framework.cloud_event"),
    "sweeper": ("sweep_turns", "http", "functions_framework.http"),
}


def functions() -> dict[str, Any]:
    result: dict[str, Any] = agent().locals["functions"]
    return result


def test_functions_are_the_entry_points_without_trigger() -> None:
    fn = agent().resource("google_cloudfunctions2_function", "this")
    assert fn["for_each"] == "${local.functions}"
    assert "event_trigger" not in fn  # push subscriptions and the scheduler deliver
    build = one(fn["build_config"])
    assert build["entry_point"] == "${each.value.entry_point}"
    assert build["environment_variables"] == {
        "GOOGLE_FUNCTION_SIGNATURE_TYPE": "${each.value.signature}"
    }
    assert agent().default("runtime") == "python312"
    assert build["service_account"] == (
        "projects/${var.project_id}/serviceAccounts/${var.builder_service_account}"
    )
    source = one(one(build["source"])["storage_source"])
    assert source["object"] == "${google_storage_bucket_object.source.name}"
    assert "count" not in agent().resource("google_storage_bucket_object", "source")
    got = {k: (v["entry_point"], v["signature"]) for k, v in functions().items()}
    assert got == {k: v[:2] for k, v in ENTRY_POINTS.items()}
    # The entry points that exist are what the functions say (those still being written by
    # their owners are checked once they are in main.py).
    tree = ast.parse((ROOT / "services" / "agent_fn" / "main.py").read_text())
    fns = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "handle_turn" in fns
    for entry, _, decorator in ENTRY_POINTS.values():
        if entry in fns:
            decorators = [ast.unparse(d) for d in fns[entry].decorator_list]
            assert decorator in decorators, entry


def test_function_service_settings() -> None:
    d = agent()
    svc = one(d.resource("google_cloudfunctions2_function", "this")["service_config"])
    assert svc["timeout_seconds"] == "${each.value.timeout}"
    assert functions()["agent"]["timeout"] == "${var.timeout_seconds}"
    assert svc["max_instance_count"] == "${each.value.max}"
    assert functions()["agent"]["max"] == "${var.max_instances}"
    assert svc["service_account_email"] == "${var.agent_service_account}"
    assert svc["ingress_settings"] == "${var.ingress_settings}"
    assert d.default("ingress_settings") == "ALLOW_INTERNAL_ONLY"
    assert svc["environment_variables"] == "${local.environment}"
    # A turn's lease outlives the platform's timeout, which ends before the push request does.
    assert d.default("turn_lease_seconds") > d.default("timeout_seconds")
    assert d.default("timeout_seconds") < messaging().default("ack_deadline_seconds")
    stack = load(MODULES / "stack")
    assert stack.default("turn_lease_seconds") > stack.default("function_timeout_seconds")
    # One sweep at a time, inside the scheduler's attempt deadline.
    assert functions()["sweeper"]["max"] == 1
    sweeper_timeout = functions()["sweeper"]["timeout"]
    assert sweeper_timeout < load(MODULES / "scheduler").default("attempt_deadline_seconds")
    preconditions = one(d.resource("google_cloudfunctions2_function", "this")["lifecycle"])
    conditions = [p["condition"] for p in preconditions["precondition"]]
    assert "${var.turn_lease_seconds > var.timeout_seconds}" in conditions
    env = d.locals["environment"]
    for name in (
        "DEPLOYCHAT_PROJECT_ID",
        "DEPLOYCHAT_FIRESTORE_DATABASE",
        "DEPLOYCHAT_LOG_FORMAT",
        "DEPLOYCHAT_LOG_LEVEL",
        "DEPLOYCHAT_SESSION_TTL_DAYS",
        "DEPLOYCHAT_MODEL",
        "DEPLOYCHAT_USE_VERTEX",
        "DEPLOYCHAT_VERTEX_LOCATION",
        "DEPLOYCHAT_TURN_LEASE_S",
        "DEPLOYCHAT_TURNS_TOPIC",
        "DEPLOYCHAT_BUILD_SERVICE_ACCOUNT",
        "DEPLOYCHAT_APP_SERVICE_ACCOUNT",
    ):
        assert f"{name} =" in env, name
    # The allowlist: a JSON list, from a typed variable that is empty by default.
    assert "DEPLOYCHAT_DEPLOY_ALLOWLIST = jsonencode(var.deploy_allowlist)" in env
    for path in (
        MODULES / "stack",
        INFRA / "environments" / "dev",
        INFRA / "environments" / "prod",
    ):
        var = load(path).variables["deploy_allowlist"]
        assert var["type"] == "${list(string)}" and var["default"] == [], path
        assert "email" in var["description"] and "domain" in var["description"]
    assert stack.modules["agent_function"]["deploy_allowlist"] == "${var.deploy_allowlist}"


def test_build_events_and_sweeper_delivery() -> None:
    d = messaging()
    topic = d.resource("google_pubsub_topic", "cloud_builds")
    assert topic["name"] == "cloud-builds"  # the topic Cloud Build publishes to
    sub = d.resource("google_pubsub_subscription", "build_events")
    assert sub["topic"] == "${google_pubsub_topic.cloud_builds.id}"
    push = one(sub["push_config"])
    assert push["push_endpoint"].startswith("${var.build_events_uri}/projects/")
    oidc = one(push["oidc_token"])
    assert oidc == {
        "service_account_email": "${var.push_service_account}",
        "audience": "${var.build_events_uri}",
    }
    invoker = d.resource("google_cloud_run_v2_service_iam_member", "build_events_invoker")
    assert (invoker["role"], invoker["name"]) == (
        "roles/run.invoker",
        "${var.build_events_service_name}",
    )
    stack = load(MODULES / "stack").modules
    assert stack["messaging"]["build_events_uri"] == '${module.agent_function.uris["build-events"]}'
    sched = load(MODULES / "scheduler")
    job = sched.resource("google_cloud_scheduler_job", "sweep")
    assert sched.default("schedule") == "* * * * *"
    target = one(job["http_target"])
    assert target["uri"] == "${var.sweeper_uri}"
    assert one(target["oidc_token"]) == {
        "service_account_email": "${var.scheduler_service_account}",
        "audience": "${var.sweeper_uri}",
    }
    inv = sched.resource("google_cloud_run_v2_service_iam_member", "sweeper_invoker")
    assert inv["member"] == "serviceAccount:${var.scheduler_service_account}"
    assert stack["scheduler"]["sweeper_uri"] == '${module.agent_function.uris["sweeper"]}'


def test_identity_platform_with_google_sign_in() -> None:
    d = load(MODULES / "identity")
    config = d.resource("google_identity_platform_config", "this")
    assert config["authorized_domains"] == "${local.authorized_domains}"
    domains = d.locals["authorized_domains"]
    assert 'trimprefix(var.edge_url, "https://")' in domains  # the edge's run.app host
    assert "firebaseapp.com" in domains
    google = d.resource("google_identity_platform_default_supported_idp_config", "google")
    assert google["idp_id"] == "google.com" and google["enabled"] is True
    stack = load(MODULES / "stack").modules["identity"]
    assert stack["edge_url"] == "${module.edge_service.url}"
    key = d.resource("google_apikeys_key", "browser")
    targets = {t["service"] for t in one(key["restrictions"])["api_targets"]}
    assert targets == {"identitytoolkit.googleapis.com", "securetoken.googleapis.com"}


def test_model_credentials_never_in_plain_variables() -> None:
    d = agent()
    assert d.default("model_backend") == "vertex"
    env = d.locals["environment"]
    for secret in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "DEPLOYCHAT_GEMINI_API_KEY"):
        assert secret not in env
    # The key mode reads the key from Secret Manager, which only the agent may access.
    assert 'key        = "GEMINI_API_KEY"' in d.text
    acc = accounts()
    accessor = acc.resource("google_secret_manager_secret_iam_member", "gemini_api_key")
    assert accessor["count"] == "${var.use_vertex ? 0 : 1}"
    assert accessor["role"] == "roles/secretmanager.secretAccessor"
    assert accessor["member"] == '${google_service_account.this["agent"].member}'


# ---------------------------------------------------------------- least privilege


def accounts() -> Dir:
    return load(MODULES / "accounts")


def roles_of(account: str) -> set[str]:
    """The project roles the accounts module gives one account (its `project_roles` entry)."""
    text = re.sub(r"(?m)#.*$", "", (MODULES / "accounts" / "main.tf").read_text())
    block = text[text.index("project_roles = {") :]
    block = block[: block.index("\n  }\n")]
    entries = re.split(r"\n    (?=[a-z][\w-]* = )", block)
    (entry,) = [e for e in entries if e.startswith(f"{account} = ")]
    return set(re.findall(r'"(roles/[A-Za-z.]+)"', entry))


def test_no_owner_or_editor_anywhere() -> None:
    for path in tf_files():
        for line in path.read_text().splitlines():
            if line.strip().startswith("#"):
                continue
            for role in FORBIDDEN_ROLES:
                assert role not in line, f"{path}: {line.strip()}"
    for path in all_dirs():
        for body in load(path).of_type("google_project_iam_member").values():
            assert body["role"] not in FORBIDDEN_ROLES


def test_the_deployer_administers_no_iam_and_no_data() -> None:
    deployer = roles_of("deployer")
    for too_much in (
        "roles/resourcemanager.projectIamAdmin",
        "roles/iam.serviceAccountAdmin",
        "roles/iam.securityAdmin",
        "roles/storage.admin",
        "roles/storage.objectAdmin",
        "roles/datastore.owner",
        "roles/secretmanager.admin",
        "roles/artifactregistry.admin",
    ):
        assert too_much not in deployer, too_much
    # Nothing in the app root grants project roles or touches accounts: the bootstrap does.
    app_dirs = [p for p in module_dirs() if p.name not in ("accounts", "apis", "registry", "data")]
    for path in app_dirs + [INFRA / "environments" / env for env in ENVIRONMENTS]:
        d = load(path)
        for rtype in (
            "google_project_iam_member",
            "google_project_iam_binding",
            "google_service_account",
            "google_service_account_iam_member",
            "google_storage_bucket_iam_member",
        ):
            assert not d.of_type(rtype), f"{path.name} has {rtype}"


def test_build_and_runtime_accounts_hold_resource_roles_only() -> None:
    acc = accounts()
    for account in ("fn-build", "app-build"):
        for role in roles_of(account):
            assert not role.startswith(("roles/storage.", "roles/artifactregistry.")), role
    buckets = {
        (b.get("bucket"), b["role"], b["member"])
        for b in acc.of_type("google_storage_bucket_iam_member").values()
    }
    assert (
        "${var.function_source_bucket}",
        "roles/storage.objectViewer",
        '${google_service_account.this["fn-build"].member}',
    ) in buckets
    # The state bucket: the deployer only.
    state = acc.resource("google_storage_bucket_iam_member", "state")
    assert state["member"] == '${google_service_account.this["deployer"].member}'
    # The agent's builds of users' apps run as their own account, which may act as the apps'.
    act = acc.locals["act_as"]
    assert act["agent/app-build"] == {"account": "app-build", "member": "agent"}
    assert act["app-build/app"] == {"account": "app", "member": "app-build"}
    assert "roles/run.developer" in roles_of("app-build")
    assert "roles/cloudbuild.builds.editor" in roles_of("agent")


def test_edge_roles() -> None:
    assert roles_of("edge") == {
        "roles/datastore.user",
        "roles/logging.logWriter",
        "roles/cloudtrace.agent",
    }
    pub = edge().resource("google_pubsub_topic_iam_member", "edge_publisher")
    assert pub["role"] == "roles/pubsub.publisher"
    assert pub["topic"] == "${var.turns_topic}"  # the topic, not the project


def test_agent_roles() -> None:
    assert roles_of("agent") == {
        "roles/datastore.user",
        "roles/logging.logWriter",
        "roles/cloudtrace.agent",
        "roles/cloudbuild.builds.editor",
        "roles/aiplatform.user",
    }
    assert (
        'var.use_vertex ? ["roles/aiplatform.user"] : []'
        in (MODULES / "accounts" / "main.tf").read_text()
    )


def test_one_service_account_per_service() -> None:
    names = set(accounts().locals["accounts"])
    assert names == {
        "deployer",
        "edge",
        "agent",
        "fn-build",
        "push",
        "scheduler",
        "app-build",
        "app",
    }
    sa = accounts().resource("google_service_account", "this")
    assert sa["account_id"] == "${var.name_prefix}-${each.key}"
    # deploychat-<env>-<name> must fit the 30 characters of an account id.
    assert max(len(f"deploychat-12345678-{n}") for n in names) <= 30
    # The app root names the same accounts.
    stack = load(MODULES / "stack").locals["accounts"]
    for name in names - {"deployer"}:
        assert f'"{name}"' in stack, name


def test_bootstrap_is_the_one_time_part() -> None:
    root = load(BOOTSTRAP)
    assert set(root.modules) == {"apis", "registry", "data", "accounts"}
    identity = root.resource("google_project_service_identity", "this")
    assert identity["provider"] == "google-beta"
    assert "pubsub.googleapis.com" in identity["for_each"]
    assert root.resource("google_storage_bucket", "state")["versioning"] == [{"enabled": True}]
    backend = one(root.terraform)["backend"]
    assert backend == [{"gcs": {}}]


# ---------------------------------------------------------------- no secret in plain text


SECRET_VALUE = re.compile(
    r"AIza[0-9A-Za-z_\-]{20,}|sk-[0-9A-Za-z]{20,}|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)
SECRET_NAME = re.compile(r"(?i)(api_?key|token|secret|password)")


def test_no_secret_values_in_infra() -> None:
    for path in sorted(INFRA.rglob("*")):
        if path.is_file():
            assert not SECRET_VALUE.search(path.read_text()), f"{path} holds a key"
    for path in tf_files():
        text = path.read_text()
        # No secret value is ever written by Terraform.
        assert not re.search(r'resource\s+"google_secret_manager_secret_version"', text), path
        if path == MODULES / "identity" / "main.tf":
            continue  # read below
        assert "secret_data" not in text, f"{path} puts a secret's value through Terraform"
        assert "google_secret_manager_secret_version" not in text
    # The one value Terraform reads: the OAuth client's secret, which Identity Platform's Google
    # provider takes as an argument; it is read from Secret Manager, never from a variable.
    identity = load(MODULES / "identity")
    read = identity.data[("google_secret_manager_secret_version_access", "oauth_client_secret")]
    assert read["secret"] == "${var.google_oauth_client_secret_secret_id}"
    google = identity.resource("google_identity_platform_default_supported_idp_config", "google")
    assert google["client_secret"] == (
        "${data.google_secret_manager_secret_version_access.oauth_client_secret[0].secret_data}"
    )


@pytest.mark.parametrize("path", all_dirs(), ids=lambda p: str(p.relative_to(INFRA)))
def test_secret_like_variables_have_no_value(path: Path) -> None:
    for name, var in load(path).variables.items():
        if SECRET_NAME.search(name):
            # Only names of secrets (ids) may be variables, and then without a literal value.
            assert name.endswith("_secret_id"), f"{path.name}: variable {name} looks secret"
            assert var.get("default") is None, f"{path.name}: {name} has a default"


# ---------------------------------------------------------------- Firestore


def data() -> Dir:
    return load(MODULES / "firestore_indexes")


def test_firestore_native_with_ttl_on_every_level() -> None:
    db = load(MODULES / "data").resource("google_firestore_database", "this")
    assert db["type"] == "FIRESTORE_NATIVE"
    d = data()
    layout = {firestore_layout.SESSIONS, firestore_layout.EVENTS, firestore_layout.TURNS}
    assert layout == {"sessions", "events", "turns"}
    assert d.locals["ttl_collection_groups"] == '${toset(["sessions", "events", "turns"])}'
    ttl = d.resource("google_firestore_field", "expire_at")
    assert ttl["for_each"] == "${local.ttl_collection_groups}"
    assert ttl["collection"] == "${each.value}"
    assert ttl["field"] == "expire_at"
    assert "ttl_config" in ttl
    assert ttl["database"] == "${var.database}"


def test_history_index() -> None:
    index = data().resource("google_firestore_index", "events_final_seq")
    assert index["collection"] == "events"
    assert index["query_scope"] == "COLLECTION"
    assert index["fields"] == [
        {"field_path": "final", "order": "ASCENDING"},
        {"field_path": "seq", "order": "DESCENDING"},
    ]
    # Every query with an equality filter and an order on another field (the shape that needs a
    # composite index) is covered; the history query is one of them.
    needed = composite_queries()
    assert ("final", "seq", "DESCENDING") in needed
    indexes = {
        (b["fields"][0]["field_path"], b["fields"][1]["field_path"], b["fields"][1]["order"])
        for b in data().of_type("google_firestore_index").values()
        if b["fields"][0]["order"] == "ASCENDING"
    }
    assert needed <= indexes, needed - indexes


def test_the_sweepers_never_started_turns_index() -> None:
    index = data().resource("google_firestore_index", "turns_status_accepted_at")
    assert index["collection"] == "turns"
    assert index["query_scope"] == "COLLECTION_GROUP"  # across every session
    assert index["fields"] == [
        {"field_path": "status", "order": "ASCENDING"},
        {"field_path": "accepted_at", "order": "ASCENDING"},
    ]
    source = (ROOT / "services/agent_fn/agent/sweeper.py").read_text()
    assert "collection_group(TURNS)" in source and '"accepted_at", "<"' in source


def composite_queries() -> set[tuple[str, str, str]]:
    """(equality field, order field, direction) of the services' Firestore queries."""
    found = set()
    pattern = re.compile(
        r'FieldFilter\(\s*"(\w+)",\s*"==",[^)]*\)\s*\)\s*'
        r'\.order_by\(\s*"(\w+)"(?:,\s*direction=firestore\.Query\.(\w+))?'
    )
    for path in (ROOT / "services").rglob("*.py"):
        for eq, order, direction in pattern.findall(path.read_text()):
            if eq != order:
                found.add((eq, order, direction or "ASCENDING"))
    return found


# ---------------------------------------------------------------- foundation


def test_apis_enabled() -> None:
    services = set(load(MODULES / "apis").default("services"))
    assert {
        "run.googleapis.com",
        "cloudfunctions.googleapis.com",
        "cloudbuild.googleapis.com",
        "artifactregistry.googleapis.com",
        "pubsub.googleapis.com",
        "firestore.googleapis.com",
        "secretmanager.googleapis.com",
        "aiplatform.googleapis.com",
        "iam.googleapis.com",
        "cloudtrace.googleapis.com",
    } <= services


def test_the_app_root_always_has_its_image_and_source() -> None:
    """A repeated apply never removes a service: nothing in the app root exists only when an
    artifact is given (the issue's destroy-on-re-apply)."""
    stack = load(MODULES / "stack")
    for name in ("edge_image", "function_source_zip"):
        assert "default" not in stack.variables[name], name
        for env in ENVIRONMENTS:
            assert "default" not in load(INFRA / "environments" / env).variables[name]
    for rtype, name, module in (
        ("google_cloud_run_v2_service", "edge", "edge_service"),
        ("google_cloudfunctions2_function", "this", "agent_function"),
        ("google_storage_bucket_object", "source", "agent_function"),
        ("google_pubsub_subscription", "to_agent", "messaging"),
        ("google_pubsub_subscription", "build_events", "messaging"),
        ("google_cloud_scheduler_job", "sweep", "scheduler"),
    ):
        assert "count" not in load(MODULES / module).resource(rtype, name), (rtype, name)
    text = "".join(p.read_text() for p in (MODULES / "stack").glob("*.tf"))
    assert "!= null" not in text
    assert stack.locals["name_prefix"] == "deploychat-${var.environment}"


# ---------------------------------------------------------------- settings the services read


def accepted_env_names(settings_cls: Any) -> set[str]:
    prefix = settings_cls.model_config.get("env_prefix", "")
    names = set()
    for name, info in settings_cls.model_fields.items():
        alias = info.validation_alias
        if alias is not None and hasattr(alias, "choices"):
            names |= {c for c in alias.choices if isinstance(c, str)}
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def terraform_env(d: Dir) -> dict[str, str]:
    """The environment a module gives its service, with each expression replaced by the value it
    takes with the module's defaults (or a sample value for inputs without one)."""
    samples = {
        "var.project_id": "sample-project",
        "var.firestore_database": "(default)",
        "var.turns_topic": "deploychat-dev-turns",
        "var.allowed_origins": '["https://chat.example.com"]',
        "var.deploy_allowlist": '["alice@example.com", "@example.org"]',
        "var.sign_in_browser_key": "AIzaSy-sample",
        "var.firebase_auth_domain": "sample-project.firebaseapp.com",
        "var.agent_model": "gemini-2.5-flash",
        "var.app_build_service_account": "deploychat-dev-app-build@p.iam.gserviceaccount.com",
        "var.app_service_account": "deploychat-dev-app@p.iam.gserviceaccount.com",
    }
    body = d.locals["environment"]
    env: dict[str, str] = {}
    for name, expr in re.findall(r"([A-Z][A-Z0-9_]+) = ([^,}]+)", body):
        expr = expr.strip()
        if expr.startswith('"'):
            env[name] = expr.strip('"')
        elif m := re.fullmatch(r"tostring\(var\.(\w+)\)", expr):
            env[name] = str(d.default(m.group(1)))
        elif m := re.fullmatch(r"jsonencode\((var\.\w+)\)", expr):
            env[name] = samples[m.group(1)]
        elif expr in samples:
            env[name] = samples[expr]
        elif m := re.fullmatch(r"var\.(\w+)", expr):
            env[name] = str(d.default(m.group(1)))
        elif expr.startswith("local.use_vertex"):
            env[name] = "true" if d.default("model_backend") == "vertex" else "false"
        else:
            raise AssertionError(f"unexpected expression for {name}: {expr}")
    return env


def test_every_setting_terraform_gives_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.settings import AgentSettings
    from edge.settings import EdgeSettings

    for key in list(os.environ):
        if key.startswith(("DEPLOYCHAT_", "GEMINI", "GOOGLE_")) or key in ("PORT", "K_SERVICE"):
            monkeypatch.delenv(key, raising=False)

    edge_env = terraform_env(edge())
    assert set(edge_env) <= accepted_env_names(EdgeSettings), edge_env
    for name, value in edge_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PORT", "8080")  # Cloud Run's
    edge_settings = EdgeSettings()
    assert edge_settings.allowed_origins == ["https://chat.example.com"]
    assert edge_settings.max_frame_bytes == 65536
    assert edge_settings.turns_topic == "deploychat-dev-turns"
    assert edge_settings.log_format == "json"
    assert edge_settings.auth_mode == "firebase"
    assert edge_settings.firebase_auth_domain == "sample-project.firebaseapp.com"
    for name in edge_env:
        monkeypatch.delenv(name)

    agent_env = terraform_env(agent())
    platform = {"LOG_EXECUTION_ID"}
    assert set(agent_env) - platform <= accepted_env_names(AgentSettings), agent_env
    assert "GEMINI_API_KEY" in accepted_env_names(AgentSettings)  # the secret's env name
    for name, value in agent_env.items():
        monkeypatch.setenv(name, value)
    agent_settings = AgentSettings()
    assert agent_settings.use_vertex is True
    assert agent_settings.max_delivery_attempts == 5
    assert agent_settings.turn_lease_s == 600
    assert agent_settings.gemini_api_key is None
    assert agent_settings.deploy_allowlist == ["alice@example.com", "@example.org"]
    assert agent_settings.build_service_account == agent_env["DEPLOYCHAT_BUILD_SERVICE_ACCOUNT"]


def test_the_deployed_agent_takes_only_git_sources_and_deploys_only_to_cloud_run() -> None:
    text = (INFRA / "modules" / "agent_function" / "main.tf").read_text()
    assert re.search(r'DEPLOYCHAT_LOCAL_SOURCES\s*=\s*"false"', text)
    assert re.search(r'DEPLOYCHAT_LOCAL_DEPLOY\s*=\s*"false"', text)


def test_the_app_root_names_what_the_bootstrap_makes() -> None:
    """The app root refers to the bootstrap's resources by name, not through its state: the
    names must agree."""
    boot = load(BOOTSTRAP)
    stack = load(MODULES / "stack")
    assert (
        boot.locals["name_prefix"] == stack.locals["name_prefix"] == "deploychat-${var.environment}"
    )
    registry = boot.modules["registry"]
    fn = stack.modules["agent_function"]
    assert fn["source_bucket"] == registry["source_bucket_name"]
    assert registry["repository_id"] == "${local.name_prefix}"
    assert fn["docker_repository_id"] == (
        "projects/${var.project_id}/locations/${var.region}/repositories/${local.name_prefix}"
    )
    # Accounts: deploychat-<env>-<name>@<project>.iam.gserviceaccount.com on both sides.
    assert accounts().resource("google_service_account", "this")["account_id"] == (
        "${var.name_prefix}-${each.key}"
    )
    assert (
        "${local.name_prefix}-${name}@${var.project_id}.iam.gserviceaccount.com"
        in (stack.locals["accounts"])
    )
    # Secrets: ${name_prefix}-<purpose>.
    secret = accounts().resource("google_secret_manager_secret", "this")
    assert secret["secret_id"] == "${var.name_prefix}-${each.key}"
    assert '"google-oauth-client-secret"' in secret["for_each"]
    assert '"gemini-api-key"' in secret["for_each"]
    assert stack.modules["identity"]["google_oauth_client_secret_secret_id"] == (
        "${local.name_prefix}-google-oauth-client-secret"
    )
    assert '"${local.name_prefix}-gemini-api-key"' in stack.locals["gemini_api_key_secret_id"]
    # The Firestore database the bootstrap makes is the one the app root indexes and reads.
    assert boot.modules["data"]["database_id"] == "${var.firestore_database}"
    assert stack.modules["firestore_indexes"]["database"] == "${var.firestore_database}"
