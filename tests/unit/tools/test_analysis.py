"""analyse_repository on each sample stack, field by field with its evidence, and on hostile or
broken repositories."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.tools import Analysis, Evidence, ToolError, analyse_directory, analyse_repository
from agent.tools.analysis import MAX_ANALYSIS_BYTES
from agent.tools.detect_common import pick_version
from agent.tools.detect_node import NODE_VERSIONS
from agent.tools.detect_python import PYTHON_VERSIONS
from agent.tools.repo_files import Limits
from agent.tools.source import app_name, is_git_url, redact
from deploychat.errors import PermanentError, TransientError
from tests.support import sample_repos as samples
from tests.support.silent_server import silent_server


def analyse(builder: Callable[[Path], Path], tmp_path: Path) -> Analysis:
    return analyse_repository(
        str(builder(tmp_path / "repo")), workdir=tmp_path / "work", local_root=tmp_path
    )


def ev(analysis: Analysis, field: str) -> list[tuple[str, int]]:
    return [(e.file, e.line) for e in analysis.evidence.get(field, [])]  # type: ignore[call-overload]


def env_names(analysis: Analysis) -> list[str]:
    return [v.name for v in analysis.env_vars]


def assert_compact(analysis: Analysis) -> None:
    data = analysis.model_dump(mode="json")
    assert len(json.dumps(data)) < MAX_ANALYSIS_BYTES
    assert Analysis.model_validate(data) == analysis


# ------------------------------------------------------------------ each stack


def test_flask(tmp_path: Path) -> None:
    a = analyse(samples.write_flask_app, tmp_path)
    assert (a.language, a.language_version, a.framework) == ("python", "3.11", "flask")
    assert (a.package_manager, a.manifest, a.lock_file) == ("pip", "requirements.txt", None)
    assert (a.entry_point, a.app_target, a.server) == ("app.py", "app:app", "gunicorn")
    assert a.start_command == (
        "gunicorn --bind 0.0.0.0:$PORT --workers 1 --threads 8 --timeout 0 app:app"
    )
    assert a.extra_packages == []  # gunicorn is in requirements.txt
    assert (a.port, a.reads_port_env) == (5000, True)
    assert env_names(a) == ["GREETING", "PORT"]
    assert a.env_vars[0].evidence == [
        Evidence(file="app.py", line=6, snippet='GREETING = os.environ.get("GREETING", "Hello")')
    ]
    assert a.tests.paths == ["tests/"] and a.tests.command == "pytest"
    assert (a.dockerfile, a.procfile) == (None, None)
    assert ev(a, "language_version") == [(".python-version", 1)]
    assert ("app.py", 5) in ev(a, "framework")
    assert ("requirements.txt", 1) in ev(a, "framework")
    assert ev(a, "entry_point") == [("app.py", 5)]
    assert ev(a, "port") == [("app.py", 20)]
    assert ev(a, "package_manager") == [("requirements.txt", 0)]
    assert a.evidence["entry_point"][0].snippet == "app = Flask(__name__)"
    assert a.name == "repo" and a.commit is None
    assert a.path == str((tmp_path / "repo").resolve())
    assert_compact(a)


def test_flask_factory_with_poetry_procfile_and_dockerfile(tmp_path: Path) -> None:
    a = analyse(samples.write_flask_factory_poetry, tmp_path)
    assert (a.framework, a.package_manager, a.lock_file) == ("flask", "poetry", "poetry.lock")
    assert a.language_version == "3.12"  # ^3.11 allows our default
    assert ev(a, "language_version") == [("pyproject.toml", 6)]
    assert a.entry_point == "factory/__init__.py"
    assert a.app_target == "factory:create_app()"
    assert "'factory:create_app()'" in a.start_command
    assert a.extra_packages == ["gunicorn==23.0.0"]
    assert ("Procfile", 1) in ev(a, "entry_point")
    assert a.procfile == "Procfile"
    assert a.procfile_web == "gunicorn 'factory:create_app()' --log-file -"
    assert a.dockerfile == "Dockerfile"
    # The file, its CMD and its EXPOSE; it has a fixed port, so it does not honour $PORT.
    assert ev(a, "dockerfile") == [("Dockerfile", 0), ("Dockerfile", 4), ("Dockerfile", 3)]
    assert a.repo_dockerfile is not None
    assert (a.repo_dockerfile.expose, a.repo_dockerfile.cmd) == (8000, '["gunicorn"]')
    assert a.repo_dockerfile.honours_port is False
    assert a.repo_dockerfile.base_images == ["python:3.11-slim"]
    assert a.build == "repository_dockerfile" and "own Dockerfile" in a.build_reason
    # No port in the code: the Dockerfile's EXPOSE is the best evidence there is.
    assert a.port == 8000 and ev(a, "port") == [("Dockerfile", 3)]
    assert env_names(a) == ["SECRET_KEY"]
    assert a.tests.paths == []


def test_fastapi(tmp_path: Path) -> None:
    a = analyse(samples.write_fastapi_app, tmp_path)
    assert (a.language, a.framework, a.server) == ("python", "fastapi", "uvicorn")
    assert a.language_version == "3.12"
    assert ev(a, "language_version") == [("pyproject.toml", 4)]
    assert (a.package_manager, a.manifest, a.lock_file) == ("uv", "pyproject.toml", "uv.lock")
    assert (a.entry_point, a.app_target) == ("main.py", "main:app")
    assert a.start_command == "uvicorn main:app --host 0.0.0.0 --port $PORT"
    assert a.extra_packages == []  # uvicorn is a dependency
    assert (a.port, a.reads_port_env) == (8000, False)
    assert ev(a, "port") == [("main.py", 17)]
    assert ev(a, "entry_point") == [("main.py", 6)]
    assert ("pyproject.toml", 6) in ev(a, "framework")
    assert env_names(a) == ["DATABASE_URL"]
    assert a.tests.paths == ["test_main.py"] and a.tests.command == "pytest"


def test_django(tmp_path: Path) -> None:
    a = analyse(samples.write_django_app, tmp_path)
    assert (a.framework, a.server, a.package_manager) == ("django", "gunicorn", "pip")
    assert (a.language_version, ev(a, "language_version")) == ("3.11", [("runtime.txt", 1)])
    assert a.app_target == "mysite.wsgi:application"
    assert a.entry_point == "mysite/wsgi.py"
    assert ev(a, "entry_point") == [("mysite/settings.py", 7)]
    assert ("manage.py", 7) in ev(a, "framework")
    assert ("requirements.txt", 1) in ev(a, "framework")
    assert a.extra_packages == ["gunicorn==23.0.0"]
    assert a.port == 8000 and ev(a, "port") == []  # Django's default, no code names one
    assert env_names(a) == ["DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY", "DJANGO_DEBUG"]
    # No STATIC_ROOT: said so, with what to do; the hosts come from the environment.
    assert not a.collectstatic and any("STATIC_ROOT" in w for w in a.warnings)
    assert a.django_settings == "mysite.settings"
    assert ev(a, "hosts") == [("mysite/settings.py", 5)]
    assert a.runtime_env["DJANGO_SETTINGS_MODULE"] == "deploychat_settings"
    assert ".run.app" in a.runtime_env["DEPLOYCHAT_ALLOWED_HOSTS"]
    assert a.build_required_env == ["DJANGO_SECRET_KEY"]


def test_express(tmp_path: Path) -> None:
    a = analyse(samples.write_express_app, tmp_path)
    assert (a.language, a.language_version, a.framework) == ("node", "20", "express")
    assert ev(a, "language_version") == [("package.json", 10)]
    assert (a.package_manager, a.lock_file) == ("npm", "package-lock.json")
    assert (a.entry_point, a.app_target, a.server) == ("server.js", "server.js", "node")
    assert a.start_command == "node server.js"
    assert ev(a, "entry_point") == [("package.json", 6)]
    assert ev(a, "framework") == [("package.json", 13), ("server.js", 1)]
    assert (a.port, a.reads_port_env) == (3000, True)
    assert ev(a, "port") == [("server.js", 4)]
    # node_modules is not the app: nothing from it is reported.
    assert env_names(a) == ["PORT", "GREETING"]
    assert a.tests.command == "npm test" and a.tests.paths == ["test/"]
    assert ev(a, "tests")[0] == ("package.json", 7)


def test_nextjs(tmp_path: Path) -> None:
    a = analyse(samples.write_nextjs_app, tmp_path)
    assert (a.language, a.framework, a.server) == ("node", "nextjs", "next")
    assert (a.language_version, ev(a, "language_version")) == ("22", [(".nvmrc", 1)])
    assert (a.package_manager, a.lock_file) == ("yarn", "yarn.lock")
    assert a.entry_point == "app/page.js"
    assert a.build_script is True
    assert a.start_command == "next start -H 0.0.0.0 -p $PORT"
    assert a.port == 3000
    assert ev(a, "framework") == [("package.json", 10)]
    assert env_names(a) == ["NEXT_PUBLIC_TITLE"]


def test_static_site(tmp_path: Path) -> None:
    a = analyse(samples.write_static_site, tmp_path)
    assert (a.language, a.framework, a.server) == ("static", "static", "static")
    assert (a.entry_point, a.app_target, a.package_manager) == ("index.html", ".", "none")
    assert a.start_command.startswith("python3 -m http.server $PORT")
    assert ev(a, "entry_point") == [("index.html", 0)]
    assert a.port is None and a.env_vars == []


def test_go(tmp_path: Path) -> None:
    a = analyse(samples.write_go_app, tmp_path)
    assert (a.language, a.language_version, a.framework) == ("go", "1.22", "go-net-http")
    assert ev(a, "language_version") == [("go.mod", 3)]
    assert (a.package_manager, a.manifest, a.lock_file) == ("go", "go.mod", None)
    assert (a.entry_point, a.app_target, a.server) == ("main.go", ".", "go")
    assert a.start_command == "go run ."
    assert ev(a, "entry_point") == [("main.go", 10)]
    assert ev(a, "framework") == [("main.go", 6)]
    assert (a.port, a.reads_port_env) == (8080, True)
    assert ev(a, "port") == [("main.go", 15), ("main.go", 17)]
    assert env_names(a) == ["GREETING", "PORT"]
    assert a.tests.command == "go test ./..." and a.tests.paths == ["main_test.go"]


def test_go_with_router_in_cmd(tmp_path: Path) -> None:
    repo = tmp_path / "svc"
    (repo / "cmd" / "api").mkdir(parents=True)
    (repo / "go.mod").write_text("module example.com/svc\n\ngo 1.24.1\n")
    (repo / "go.sum").write_text("")
    (repo / "cmd" / "api" / "main.go").write_text(
        'package main\n\nimport "github.com/gin-gonic/gin"\n\nfunc main() {\n'
        '\tr := gin.Default()\n\tr.Run(":9000")\n}\n'
    )
    a = analyse_directory(repo)
    assert (a.framework, a.app_target, a.entry_point) == ("gin", "./cmd/api", "cmd/api/main.go")
    assert (a.language_version, a.lock_file) == ("1.24", "go.sum")
    assert (a.port, a.reads_port_env) == (9000, False)
    assert any("does not read PORT" in w for w in a.warnings)


def test_examples_shipped_with_the_project() -> None:
    root = Path(__file__).resolve().parents[3] / "examples"
    flask = analyse_directory(root / "hello-flask")
    assert (flask.framework, flask.app_target, flask.port) == ("flask", "app:app", 8080)
    assert env_names(flask) == ["GREETING", "PORT"]
    express = analyse_directory(root / "hello-express")
    assert (express.framework, express.server, express.lock_file) == (
        "express",
        "node",
        "package-lock.json",
    )
    assert (express.port, express.reads_port_env) == (8080, True)


# ------------------------------------------------------------------ sources


def test_clones_a_git_url_shallowly(tmp_path: Path) -> None:
    with samples.serve_sample(samples.write_flask_app, tmp_path, "r") as url:
        a = analyse_repository(url, workdir=tmp_path / "work")
    assert a.source == url and a.name == "r"
    assert a.framework == "flask" and a.entry_point == "app.py"
    assert a.commit is not None and len(a.commit) == 40
    clone = Path(a.path)
    assert clone.is_relative_to(tmp_path / "work")
    assert (clone / "app.py").is_file()
    assert (clone / ".git" / "shallow").is_file()


def test_relative_local_path(tmp_path: Path) -> None:
    samples.write_static_site(tmp_path / "site")
    a = analyse_repository("site", workdir=tmp_path / "work", local_root=tmp_path)
    assert a.framework == "static" and a.path == str((tmp_path / "site").resolve())


def test_missing_local_path(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="no directory"):
        analyse_repository(str(tmp_path / "nope"), workdir=tmp_path, local_root=tmp_path)


def test_clone_of_missing_repository(tmp_path: Path) -> None:
    (tmp_path / "served").mkdir()
    with (
        samples.git_daemon(tmp_path / "served") as base,
        pytest.raises(ToolError, match="Could not clone") as raised,
    ):
        analyse_repository(f"{base}/missing.git", workdir=tmp_path / "work")
    # Permanent (the user must fix the URL), and one short line, not git's whole log.
    assert isinstance(raised.value, PermanentError)
    assert not isinstance(raised.value, TransientError)
    assert "\n" not in raised.value.message and len(raised.value.message) < 400
    assert list((tmp_path / "work").iterdir()) == []  # nothing half-cloned is left


def test_clone_too_large(tmp_path: Path) -> None:
    def big(dest: Path) -> Path:
        samples.write_flask_app(dest)
        (dest / "blob.bin").write_bytes(os.urandom(300_000))
        return dest

    with (
        samples.serve_sample(big, tmp_path, "big") as url,
        pytest.raises(ToolError, match="larger than"),
    ):
        analyse_repository(url, workdir=tmp_path / "work", max_repo_bytes=100_000)
    assert list((tmp_path / "work").iterdir()) == []


def test_credentials_in_a_url_are_never_repeated(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://user:s3cr3t@127.0.0.1:{port}/app.git"
    with pytest.raises(ToolError) as raised:  # permanent: no retries of a failing clone
        analyse_repository(url, workdir=tmp_path / "work", clone_timeout_s=20)
    assert "s3cr3t" not in raised.value.message
    assert "http://***@127.0.0.1" in raised.value.message


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP server that accepts connections and never answers."""
    with silent_server() as port:
        yield port


def test_clone_timeout(tmp_path: Path, silent_port: int) -> None:
    url = f"http://127.0.0.1:{silent_port}/app.git"
    with pytest.raises(ToolError, match="longer than 1 s"):
        analyse_repository(url, workdir=tmp_path / "work", clone_timeout_s=1)


# ------------------------------------------------------------------ hostile and broken


def test_hostile_repository_is_read_safely(tmp_path: Path) -> None:
    repo = samples.write_static_site(tmp_path / "repo")
    outside = tmp_path / "outside.py"
    outside.write_text("from flask import Flask\napp = Flask(__name__)\n")
    (repo / "app.py").symlink_to(outside)  # a link out of the repo is not followed
    (repo / "loop").symlink_to(repo, target_is_directory=True)
    os.mkfifo(repo / "requirements.txt")  # opening a FIFO would block forever
    (repo / "node_modules" / "x").mkdir(parents=True)
    (repo / "node_modules" / "x" / "app.py").write_text("from flask import Flask\n")
    venv = repo / "myenv"
    (venv / "lib").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr\n")
    (venv / "lib" / "server.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    (repo / "huge.py").write_text("# x\n" * 300_000)  # over the per-file cap: not read
    a = analyse_directory(repo)
    assert a.framework == "static"  # none of the Python above was taken for the app


def test_limits_on_files_listed(tmp_path: Path) -> None:
    repo = samples.write_flask_app(tmp_path / "repo")
    for i in range(30):
        (repo / f"z{i:02}.txt").write_text("x")
    a = analyse_directory(repo, limits=Limits(max_files=10))
    assert a.framework == "flask"  # root files come first
    assert any("more than 10 files" in w for w in a.warnings)


def test_many_env_vars_stay_compact(tmp_path: Path) -> None:
    repo = samples.write_flask_app(tmp_path / "repo")
    lines = [
        f'V{i} = os.environ.get("SETTING_{i:03}_{"X" * 60}")  # {"y" * 80}' for i in range(400)
    ]
    (repo / "settings.py").write_text("import os\n" + "\n".join(lines) + "\n")
    a = analyse_directory(repo)
    assert 0 < len(a.env_vars) <= 30
    assert_compact(a)


@pytest.mark.parametrize(
    ("builder", "message"),
    [
        (samples.write_empty_repo, "is empty"),
        (samples.write_readme_only, "could not tell what kind of app"),
        (samples.write_python_without_framework, "no web framework"),
    ],
)
def test_unrecognised(tmp_path: Path, builder: Callable[[Path], Path], message: str) -> None:
    with pytest.raises(ToolError, match=message) as raised:
        analyse(builder, tmp_path)
    if builder is not samples.write_empty_repo:
        # The user is told what was looked for.
        text = raised.value.message
        assert "could not tell what kind of app" in text
        assert all(word in text for word in ("Flask", "Express", "go.mod", "index.html"))


def test_package_json_without_server_is_not_an_app(tmp_path: Path) -> None:
    repo = tmp_path / "lib"
    repo.mkdir()
    (repo / "package.json").write_text('{"name": "lib", "dependencies": {"lodash": "4"}}')
    with pytest.raises(ToolError, match="without a server"):
        analyse_directory(repo)


# ------------------------------------------------------------------ version constraints


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("3.11", "3.11"),
        ("3.11.4", "3.11"),
        ("python-3.10.2", "3.10"),
        (">=3.10", "3.12"),
        (">=3.13", "3.13"),
        (">=3.8,<3.11", "3.10"),
        ("^3.10", "3.12"),
        ("~3.10", "3.10"),
        ("==3.11.*", "3.11"),
        ("nothing", None),
    ],
)
def test_python_version(spec: str, expected: str | None) -> None:
    assert pick_version(spec, PYTHON_VERSIONS, (3, 12)) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("18", "18"), ("18.x", "18"), (">=18", "20"), (">=21", "22"), ("^22.1.0", "22"),
     ("~18.2", "18"), ("v22", "22"), (">=16 <19", "18")],
)  # fmt: skip
def test_node_version(spec: str, expected: str) -> None:
    assert pick_version(spec, NODE_VERSIONS, (20, 0), major_only=True) == expected


def test_analysis_event_shape(tmp_path: Path) -> None:
    # What the agent stores as the `data` of an `analysis` event.
    data: dict[str, Any] = analyse(samples.write_express_app, tmp_path).model_dump(mode="json")
    json.dumps(data)
    assert {"language", "framework", "start_command", "port", "evidence"} <= data.keys()
    assert data["evidence"]["framework"][0] == {
        "file": "package.json",
        "line": 13,
        "snippet": '"express": "^4.21.2"',
    }


@pytest.mark.parametrize(
    ("source", "is_url", "name"),
    [
        ("https://github.com/acme/My_App.git", True, "my-app"),
        ("git@github.com:acme/shop.git", True, "shop"),
        ("ssh://git@example.com/acme/api", True, "api"),
        ("file:///srv/git/site.git/", False, "site"),  # a local path by another name
        ("./examples/hello-flask", False, "hello-flask"),
        ("/home/me/123", False, "app-123"),
        ("--upload-pack=touch /tmp/x", False, "x"),  # a path, never an option
    ],
)
def test_source_kinds_and_names(source: str, is_url: bool, name: str) -> None:
    assert is_git_url(source) is is_url
    assert app_name(source) == name


def test_redact() -> None:
    assert redact("https://me:tok@github.com/a/b.git") == "https://***@github.com/a/b.git"
    assert redact("git@github.com:a/b.git") == "git@github.com:a/b.git"
