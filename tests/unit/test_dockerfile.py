"""The edge's image (services/ws_edge/Dockerfile and the root .dockerignore), checked as far as a
machine without a Docker engine allows: the file is parsed and its promises asserted, and one
test replays its stages with uv in a temporary directory and starts the result.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from fnmatch import fnmatch
from functools import cache
from pathlib import Path

import pytest

from tests.support.uv import uv_command

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "services" / "ws_edge" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYTHON_BASE = re.compile(r"^python:3\.12\.\d+-slim-bookworm@sha256:[0-9a-f]{64}$")


@dataclass
class Stage:
    base: str
    alias: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@cache
def stages() -> list[Stage]:
    """Instructions per stage, with continuation lines joined and comments dropped."""
    result: list[Stage] = []
    logical = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, args = logical.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        logical = ""
        if keyword == "FROM":
            parts = args.split()
            alias = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            result.append(Stage(parts[0], alias))
        else:
            assert result, "an instruction before the first FROM"
            result[-1].instructions.append((keyword, args))
    return result


def stage(alias: str) -> Stage:
    return next(s for s in stages() if s.alias == alias)


def final() -> Stage:
    return stages()[-1]


def resolve_base(s: Stage) -> str:
    """The image a stage finally derives from."""
    aliases = {x.alias: x for x in stages() if x.alias}
    base = s.base
    while base in aliases:
        base = aliases[base].base
    return base


def env_of(s: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in s.all("ENV"):
        for token in shlex.split(args):
            key, _, value = token.partition("=")
            env[key] = value
    return env


def test_parser_directive_first() -> None:
    assert DOCKERFILE.read_text().splitlines()[0].startswith("# syntax=docker/dockerfile:1")


def test_pinned_slim_python_base() -> None:
    python = stage("python")
    assert PYTHON_BASE.match(python.base), python.base
    for s in stages():
        base = resolve_base(s)
        assert "latest" not in base
        assert (
            PYTHON_BASE.match(base)
            or re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", base)
            # The page's browser libraries are vendored from npm in a pinned Node stage.
            or (s.alias == "vendor" and re.fullmatch(r"node:\d+\.\d+\.\d+-bookworm-slim", base))
        ), base
    assert resolve_base(final()) == python.base
    assert final().alias == "runtime"


def test_runs_as_a_non_root_user() -> None:
    users = final().all("USER")
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # The account exists in the image, with that uid.
    created = " ".join(final().all("RUN"))
    assert "useradd" in created and f"--uid {user}" in created


def test_starts_gunicorn_with_gevent_on_port() -> None:
    runtime = final()
    cmd = json.loads(runtime.all("CMD")[-1])  # exec form: signals reach gunicorn
    assert cmd == ["gunicorn", "--config", "gunicorn.conf.py", "edge.wsgi:app"]
    assert runtime.all("WORKDIR")[-1] == "/app/services/ws_edge"
    env = env_of(runtime)
    assert env["PYTHONPATH"].split(":") == ["/app", "/app/services/ws_edge"]
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["PORT"] == "8080"
    assert runtime.all("EXPOSE") == ["8080"]
    # gunicorn.conf.py: the gevent worker, bound to PORT (through EdgeSettings).
    conf = (ROOT / "services" / "ws_edge" / "gunicorn.conf.py").read_text()
    assert re.search(r'^worker_class = "gevent"$', conf, re.M)
    assert re.search(r'^bind = f"0\.0\.0\.0:\{_settings\.port\}"$', conf, re.M)
    settings = (ROOT / "services" / "ws_edge" / "edge" / "settings.py").read_text()
    assert 'AliasChoices("PORT"' in settings
    # Terraform tells Cloud Run the same port.
    edge_tf = (ROOT / "infra" / "modules" / "edge_service" / "main.tf").read_text()
    assert re.search(r"container_port\s*=\s*8080", edge_tf)


def test_dependencies_come_from_the_lock_file() -> None:
    deps = stage("deps")
    assert ("COPY", "pyproject.toml uv.lock ./") in deps.instructions
    run = " ".join(deps.all("RUN"))
    assert "uv export --frozen --no-dev --extra edge --no-emit-project" in run
    assert "--require-hashes" in run
    assert "COPY --from=uv /uv /usr/local/bin/uv" in [f"COPY {a}" for a in deps.all("COPY")]
    # The edge extra holds what the command needs.
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["edge"]
    names = {re.split(r"[<>=!~ \[]", req)[0] for req in extras}
    assert {"gunicorn", "gevent", "flask", "flask-sock"} <= names


def context_copies(s: Stage) -> list[tuple[str, str]]:
    """(source, destination) of the COPY instructions that read the build context."""
    result: list[tuple[str, str]] = []
    for args in s.all("COPY"):
        parts = [p for p in args.split() if not p.startswith("--")]
        if "--from=" in args:
            continue
        *sources, dest = parts
        result.extend((src, dest) for src in sources)
    return result


def test_copies_only_what_the_edge_needs() -> None:
    copies = context_copies(final())
    assert copies == [
        ("deploychat/", "/app/deploychat/"),
        ("services/ws_edge/", "/app/services/ws_edge/"),
    ]
    assert [a for a in final().all("COPY") if "--from=" in a] == [
        "--from=deps /opt/venv /opt/venv",
        "--from=vendor /src/vendor/ /app/services/ws_edge/edge/static/vendor/",
    ]
    # Only the Node stage reads a script (the vendoring one); the image gets its output.
    everything = " ".join(a for s in stages() if s.alias != "vendor" for a in s.all("COPY"))
    for never in ("tests", "infra", "agent_fn", "devstack", "scripts"):
        assert never not in everything


@cache
def ignore_rules() -> list[str]:
    return [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def ignored(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` lets a path back in."""
    result = False
    for rule in ignore_rules():
        negate = rule.startswith("!")
        pattern = rule[1:] if negate else rule
        pattern = pattern.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern.startswith("**/"):
            tail = pattern[3:]
            hit = any(fnmatch(p, tail) for p in parts)
        else:
            hit = any(fnmatch(p, pattern) for p in prefixes)
        if hit:
            result = not negate
    return result


def test_dockerignore_keeps_the_context_small() -> None:
    assert ignore_rules()[0] == "*"
    for src, _ in context_copies(final()) + context_copies(stage("deps")):
        for name in src.split():
            assert not ignored(name.rstrip("/")), f"{name} is copied but ignored"
    for path in (
        "deploychat/protocol.py",
        "services/ws_edge/edge/app.py",
        "services/ws_edge/gunicorn.conf.py",
        "uv.lock",
    ):
        assert not ignored(path), path
    for path in (
        "tests/unit/test_protocol.py",
        "infra/modules/stack/main.tf",
        "services/agent_fn/main.py",
        "devstack/stack.py",
        ".venv/bin/python",
        ".git/config",
        "deploychat/__pycache__/protocol.cpython-312.pyc",
        "services/ws_edge/edge/__pycache__/app.cpython-312.pyc",
    ):
        assert ignored(path), path


# ---------------------------------------------------------------- the stages, replayed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def python312() -> str | None:
    """A Python 3.12 interpreter (the image's minor version), if this machine has one."""
    candidates: list[str] = []
    uv = uv_command()
    if uv is not None:
        found = subprocess.run(
            [*uv, "python", "find", "--no-python-downloads", "3.12"],
            capture_output=True,
            text=True,
            check=False,
        )
        candidates.append(found.stdout.strip())
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))
    candidates += ["/usr/local/bin/python3.12", "/usr/bin/python3.12"]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout.strip() == "True":
            return candidate
    return None


@pytest.mark.integration
def test_replayed_stages_serve_healthz(tmp_path: Path) -> None:
    """The deps stage's commands, then the runtime stage's files, environment and command."""
    uv, python = uv_command(), python312()
    if uv is None or python is None:
        pytest.skip("needs uv and a Python 3.12")
    # deps: the export command exactly as written, then the install into a fresh venv.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy2(ROOT / name, src / name)
    run = " ".join(stage("deps").all("RUN"))
    export = next(c.strip() for c in run.split("&&") if c.strip().startswith("uv export"))
    subprocess.run([*uv, *shlex.split(export)[1:]], cwd=src, check=True, capture_output=True)
    venv = tmp_path / "opt" / "venv"
    subprocess.run([*uv, "venv", "--quiet", "--python", python, str(venv)], check=True)
    subprocess.run(
        [
            *uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(venv / "bin" / "python"),
            "--require-hashes",
            "--no-deps",
            "-r",
            "requirements.txt",
        ],
        cwd=src,
        check=True,
        timeout=300,
    )
    # runtime: only the copied paths, under /app -> tmp/app.
    app = tmp_path / "app"
    for source, dest in context_copies(final()):
        target = tmp_path / dest.lstrip("/")
        shutil.copytree(
            ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__", "Dockerfile")
        )
    env_image = env_of(final())
    port = free_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": env_image["PYTHONPATH"].replace("/app", str(app)),
        "PYTHONUNBUFFERED": "1",
        "PORT": str(port),
        "DEPLOYCHAT_PROJECT_ID": "dockerfile-test",
    }
    workdir = Path(final().all("WORKDIR")[-1].replace("/app", str(app)))
    cmd = json.loads(final().all("CMD")[-1])
    log = (tmp_path / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    assert json.loads(r.read())["status"] == "ok"
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((tmp_path / "gunicorn.log").read_text())
                time.sleep(0.2)
        # The runtime imports come from the copied tree, not from the repository.
        check = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import deploychat, edge; print(deploychat.__file__); print(edge.__file__)",
            ],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert all(line.startswith(str(app)) for line in check.stdout.split())
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=20)
        log.close()
    assert sys.version_info >= (3, 11)
