"""What analysing a repository finds, with the lines that show it.

Stored as the `data` of an `analysis` session event and read by the model, so it stays small:
evidence is capped per field and snippets are short.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# "other": nothing we recognise, but the repository's own Dockerfile says how to build it.
Language = Literal["python", "node", "go", "static", "java", "php", "ruby", "dotnet", "other"]
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
    "streamlit",
    "gradio",
    "vite",  # single-page apps: built, then served as files with a fallback to index.html
    "create-react-app",
    "angular",
    "spring-boot",
    "java",
    "laravel",
    "symfony",
    "slim",
    "php",
    "rails",
    "sinatra",
    "ruby",
    "aspnet",
    "unknown",  # only with the repository's own Dockerfile
]
PackageManager = Literal[
    "pip", "uv", "poetry", "pipenv", "npm", "yarn", "pnpm", "go", "maven", "gradle",
    "composer", "bundler", "dotnet", "none",
]  # fmt: skip
# How the app is served, which decides the start command: a WSGI or ASGI server we run for a
# Python app, node or `npm start`, Next's own server, a compiled Go binary, or a file server.
# `procfile`: the project's own Procfile `web:` command; `python`: `python <entry>` (Gradio);
# `spa`: built files served with a fallback; `java`: `java -jar`; `buildpack`: the buildpack
# decides (PHP, Ruby, .NET); `dockerfile`: the repository's Dockerfile decides.
Server = Literal[
    "gunicorn", "uvicorn", "node", "npm", "next", "go", "static", "streamlit", "python",
    "procfile", "spa", "java", "buildpack", "dockerfile",
]  # fmt: skip
# How a Cloud Run image is built (see build_plan.py).
BuildKind = Literal["repository_dockerfile", "generated_dockerfile", "buildpacks"]

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
    "build",
    "assets",
    "static_files",
    "hosts",
    "health",
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


class RepoDockerfile(_Model):
    """The repository's own Dockerfile, as far as its text tells."""

    path: str
    base_images: list[str] = []
    expose: int | None = None
    cmd: str | None = None  # the last CMD or ENTRYPOINT, as written
    honours_port: bool | None = None  # True: it uses $PORT; False: a fixed port; None: unclear


class AppDir(_Model):
    """An app found in a subfolder of a repository (monorepos)."""

    subfolder: str
    language: Language
    framework: Framework
    evidence: Evidence


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
    repo_dockerfile: RepoDockerfile | None = None
    procfile: str | None = None
    procfile_web: str | None = None  # its `web:` command

    subfolder: str | None = None  # the app's folder inside the repository, if not its root
    other_apps: list[AppDir] = []  # more apps in subfolders (a monorepo)
    build: BuildKind = "generated_dockerfile"
    build_reason: str = ""  # one sentence: how the image will be built, and why
    build_tool: str | None = None  # maven, gradle, composer, bundler, dotnet, npm (SPAs)
    build_output: str | None = None  # what a build produces to run or serve: dist/, target/
    assets: list[str] = []  # folders read at run time that a compiled app needs beside it
    factory: bool = False  # app_target names a function that returns the app
    next_standalone: bool = False  # next.config sets output: "standalone"
    django_settings: str | None = None  # the settings module, e.g. mysite.settings
    collectstatic: bool = False  # Django with STATIC_ROOT: `collectstatic` at build time
    # Variables the settings require (`os.environ["X"]`): given a placeholder for collectstatic.
    build_required_env: list[str] = []
    # Environment the deployment sets on the app (e.g. Django's hosts), and for a buildpack build.
    runtime_env: dict[str, str] = {}
    build_env: dict[str, str] = {}
    health_path: str = "/"
    local_run: str | None = None  # why it cannot run on this machine, when it cannot

    tests: Tests = Tests()
    warnings: list[str] = []
    evidence: dict[EvidenceField, list[Evidence]] = {}
