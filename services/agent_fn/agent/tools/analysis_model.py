"""What analysing a repository finds, with the lines that show it.

Stored as the `data` of an `analysis` session event and read by the model, so it stays small:
evidence is capped per field and snippets are short.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Language = Literal["python", "node", "go", "static"]
Framework = Literal[
    "flask",
    "fastapi",
    "django",
    "express",
    "nextjs",
    "fastify",
    "koa",
    "node",  # a Node server without a framework we know, started by its package.json
    "go-net-http",
    "gin",
    "echo",
    "chi",
    "fiber",
    "static",
]
PackageManager = Literal["pip", "uv", "poetry", "pipenv", "npm", "yarn", "pnpm", "go", "none"]
# How the app is served, which decides the start command: a WSGI or ASGI server we run for a
# Python app, node or `npm start`, Next's own server, a compiled Go binary, or a file server.
Server = Literal["gunicorn", "uvicorn", "node", "npm", "next", "go", "static"]

EvidenceField = Literal[
    "language",
    "language_version",
    "framework",
    "package_manager",
    "entry_point",
    "port",
    "dockerfile",
    "procfile",
    "tests",
]

MAX_EVIDENCE_PER_FIELD = 4


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Evidence(_Model):
    file: str  # relative to the repository root, with forward slashes
    line: Annotated[int, Field(ge=0)]  # 1-based; 0 when the file's existence is the evidence
    snippet: str


class EnvVar(_Model):
    name: str
    evidence: list[Evidence]


class Tests(_Model):
    paths: list[str] = []  # the tests/ directory and test files, a few at most
    command: str | None = None  # how the project runs them, e.g. `pytest` or `npm test`


class Analysis(_Model):
    source: str  # as the user gave it: URL or path
    path: str  # the local directory that was analysed (the clone, for a URL)
    commit: str | None = None  # HEAD of the clone; None for a local directory
    name: str  # a short slug for the app, usable as a Cloud Run service name

    language: Language
    language_version: str | None = None  # e.g. "3.12", "20", "1.22": None when not pinned
    framework: Framework
    package_manager: PackageManager
    manifest: str | None = None  # requirements.txt, pyproject.toml, Pipfile, package.json, go.mod
    lock_file: str | None = None

    entry_point: str  # the file the app starts from (app.py, server.js, main.go, index.html)
    app_target: str  # what the server is given: "app:app", "server.js", "./cmd/api", "."
    server: Server
    start_command: str  # with `$PORT` where the port goes
    extra_packages: list[str] = []  # what the start command needs that the project lacks
    build_script: bool = False  # package.json has a `build` script (Next.js always builds)

    port: int | None = None  # the port the code listens on when PORT is not set
    reads_port_env: bool = False  # the app's own code reads the PORT variable
    env_vars: list[EnvVar] = []

    dockerfile: str | None = None  # the repository's own Dockerfile, if any
    procfile: str | None = None
    procfile_web: str | None = None  # its `web:` command

    tests: Tests = Tests()
    warnings: list[str] = []
    evidence: dict[EvidenceField, list[Evidence]] = {}
