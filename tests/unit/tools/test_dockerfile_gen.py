"""generate_dockerfile per stack: pinned slim base, dependencies cached before the code,
non-root, listening on $PORT, the right CMD, multi-stage where a build is needed."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.tools import Analysis, GeneratedFiles, analyse_directory, generate_dockerfile
from tests.support import sample_repos as samples

_INSTRUCTIONS = {
    "FROM", "RUN", "COPY", "ENV", "WORKDIR", "USER", "EXPOSE", "CMD", "ENTRYPOINT", "ARG",
}  # fmt: skip


def generate(builder: Callable[[Path], Path], tmp_path: Path) -> tuple[Analysis, GeneratedFiles]:
    analysis = analyse_directory(builder(tmp_path / "repo"))
    return analysis, generate_dockerfile(analysis)


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined; fails on junk."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if line.endswith("\\"):
            continue
        keyword, _, args = " ".join(pending.split()).partition(" ")
        assert keyword in _INSTRUCTIONS, f"not a Dockerfile instruction: {pending!r}"
        out.append((keyword, args))
        pending = ""
    assert not pending, "dangling line continuation"
    return out


def index_of(items: list[tuple[str, str]], keyword: str, pattern: str, start: int = 0) -> int:
    for i, (kw, args) in enumerate(items[start:], start):
        if kw == keyword and re.search(pattern, args):
            return i
    raise AssertionError(f"no {keyword} matching {pattern!r} in {items}")


def stages(items: list[tuple[str, str]]) -> list[str]:
    return [args for kw, args in items if kw == "FROM"]


def last_user(items: list[tuple[str, str]]) -> str:
    return [args for kw, args in items if kw == "USER"][-1]


def assert_common(files: GeneratedFiles, port: int = 8080) -> list[tuple[str, str]]:
    items = instructions(files.dockerfile)
    final_from = stages(items)[-1].split(" AS ")[0]
    assert final_from == files.base_image
    assert re.search(r"\d", final_from), f"base image not pinned: {final_from}"
    assert "latest" not in files.dockerfile
    assert last_user(items) not in ("root", "0", "0:0")
    assert ("EXPOSE", str(port)) in items
    assert files.port == port
    for line in (".git", ".env", "Dockerfile*"):
        assert line in files.dockerignore.splitlines()
    return items


def test_flask(tmp_path: Path) -> None:
    _, files = generate(samples.write_flask_app, tmp_path)
    items = assert_common(files)
    assert files.base_image == "python:3.11-slim-bookworm"  # .python-version says 3.11
    assert files.existing_dockerfile is False
    copy_reqs = index_of(items, "COPY", r"^requirements\.txt \./$")
    install = index_of(items, "RUN", r"pip install -r requirements\.txt", copy_reqs)
    copy_code = index_of(items, "COPY", r"^\. \.$", install)
    assert index_of(items, "USER", r"app", copy_code) > copy_code
    assert ("ENV", "PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 "
            "PIP_DISABLE_PIP_VERSION_CHECK=1 PORT=8080") in items  # fmt: skip
    assert items[-1] == (
        "CMD",
        "exec gunicorn --bind 0.0.0.0:$PORT --workers 1 --threads 8 --timeout 0 app:app",
    )
    assert "**/__pycache__" in files.dockerignore and ".venv" in files.dockerignore


def test_fastapi_with_uv(tmp_path: Path) -> None:
    _, files = generate(samples.write_fastapi_app, tmp_path)
    items = assert_common(files)
    assert files.base_image == "python:3.12-slim-bookworm"
    copy_uv = index_of(items, "COPY", r"^--from=ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+ /uv ")
    copy_lock = index_of(items, "COPY", r"^pyproject\.toml uv\.lock \./$", copy_uv)
    sync = index_of(items, "RUN", r"uv sync --frozen --no-dev --no-install-project", copy_lock)
    index_of(items, "COPY", r"^\. \.$", sync)
    assert items[-1] == ("CMD", "exec uvicorn main:app --host 0.0.0.0 --port $PORT")


def test_django_adds_gunicorn(tmp_path: Path) -> None:
    _, files = generate(samples.write_django_app, tmp_path)
    items = assert_common(files)
    index_of(items, "RUN", r"pip install -r requirements\.txt gunicorn==23\.0\.0")
    assert items[-1][1].endswith("mysite.wsgi:application")


def test_poetry_factory_and_existing_dockerfile(tmp_path: Path) -> None:
    _, files = generate(samples.write_flask_factory_poetry, tmp_path)
    items = assert_common(files)
    assert files.existing_dockerfile is True
    assert "own Dockerfile was left as it is" in files.dockerfile
    copy = index_of(items, "COPY", r"^pyproject\.toml poetry\.lock\* \./$")
    index_of(items, "RUN", r"poetry install --only main --no-root", copy)
    # The Procfile's `web:` command, as written (gunicorn binds $PORT by itself).
    assert items[-1] == ("CMD", "exec gunicorn 'factory:create_app()' --log-file -")


def test_express(tmp_path: Path) -> None:
    _, files = generate(samples.write_express_app, tmp_path)
    items = assert_common(files)
    assert files.base_image == "node:20-bookworm-slim"
    assert len(stages(items)) == 1
    copy = index_of(items, "COPY", r"^package\.json package-lock\.json \./$")
    install = index_of(items, "RUN", r"^npm ci --omit=dev", copy)
    index_of(items, "COPY", r"^\. \.$", install)
    assert last_user(items) == "node"
    assert ("ENV", "NODE_ENV=production PORT=8080") in items
    assert items[-1] == ("CMD", '["node", "server.js"]')
    assert "**/node_modules" in files.dockerignore.splitlines()


def test_express_with_a_hard_coded_port(tmp_path: Path) -> None:
    repo = samples.write_express_app(tmp_path / "repo")
    (repo / "server.js").write_text(
        'const express = require("express");\nconst app = express();\napp.listen(3000);\n'
    )
    analysis = analyse_directory(repo)
    assert (analysis.port, analysis.reads_port_env) == (3000, False)
    files = generate_dockerfile(analysis)
    assert_common(files, port=3000)  # Cloud Run must send traffic where the app listens


def test_nextjs_is_multi_stage(tmp_path: Path) -> None:
    _, files = generate(samples.write_nextjs_app, tmp_path)
    items = assert_common(files)
    assert stages(items) == [
        "node:22-bookworm-slim AS deps",
        "node:22-bookworm-slim AS build",
        "node:22-bookworm-slim",
    ]
    index_of(items, "RUN", r"yarn install --frozen-lockfile")
    build = index_of(items, "RUN", r"npm run build")
    index_of(items, "COPY", r"--from=build --chown=node:node /app", build)
    assert items[-1] == ("CMD", "exec node_modules/.bin/next start -H 0.0.0.0 -p $PORT")


def test_go_builds_a_static_binary_into_distroless(tmp_path: Path) -> None:
    _, files = generate(samples.write_go_app, tmp_path)
    items = assert_common(files)
    assert stages(items) == ["golang:1.23-bookworm AS build", files.base_image]
    assert files.base_image.startswith("gcr.io/distroless/static-debian12")
    copy_mod = index_of(items, "COPY", r"^go\.mod go\.sum\* \./$")
    download = index_of(items, "RUN", r"go mod download", copy_mod)
    copy_code = index_of(items, "COPY", r"^\. \.$", download)
    index_of(items, "RUN", r"CGO_ENABLED|go build .* -o /out/server \.$", copy_code)
    assert ("ENV", "CGO_ENABLED=0") in items
    assert last_user(items) == "nonroot:nonroot"
    assert items[-1] == ("ENTRYPOINT", '["/server"]')


def test_go_version_newer_than_our_default(tmp_path: Path) -> None:
    repo = samples.write_go_app(tmp_path / "repo")
    (repo / "go.mod").write_text("module example.com/hello\n\ngo 1.24\n")
    files = generate_dockerfile(analyse_directory(repo))
    assert "FROM golang:1.24-bookworm AS build" in files.dockerfile


def test_static_site_on_unprivileged_nginx(tmp_path: Path) -> None:
    _, files = generate(samples.write_static_site, tmp_path)
    items = assert_common(files)
    assert files.base_image.startswith("nginxinc/nginx-unprivileged:1.")
    template = index_of(items, "RUN", r"/etc/nginx/templates/default\.conf\.template")
    # nginx's entrypoint fills ${PORT} in from the environment when the container starts.
    assert "' listen ${PORT};'" in items[template][1]
    assert "$uri" in items[template][1]
    # Run the printf as the build would, and check the nginx config it writes.
    raw = files.dockerfile.replace("\\\n", "")  # continuations joined, spacing kept
    command = re.search(r"printf .*default\.conf\.template", raw)[0]  # type: ignore[index]
    out = tmp_path / "default.conf.template"
    command = command.replace("/etc/nginx/templates/default.conf.template", str(out))
    subprocess.run(["sh", "-c", command], check=True)
    assert out.read_text().splitlines() == [
        "server {",
        "    listen ${PORT};",
        "    server_name _;",
        "    root /usr/share/nginx/html;",
        "    index index.html;",
        "    location / {",
        "        try_files $uri $uri/ =404;",
        "    }",
        "}",
    ]
    assert ("COPY", ". /usr/share/nginx/html/") in items
    assert ("ENV", "PORT=8080") in items


@pytest.mark.parametrize("name", sorted(samples.SAMPLES))
def test_every_sample_gives_a_well_formed_dockerfile(tmp_path: Path, name: str) -> None:
    _, files = generate(samples.SAMPLES[name], tmp_path)
    assert_common(files)
    assert files.dockerfile.startswith("# syntax=docker/dockerfile:1\n")
