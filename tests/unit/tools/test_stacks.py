"""The classes of real repositories (issue 11), each through the real tools: what the analysis
finds with its evidence, the Dockerfile written for it, and how the Cloud Run image is built.
No network: nothing here installs or builds anything."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.tools import Analysis, ToolError, analyse_directory, analyse_repository
from agent.tools.build_plan import BUILDPACKS_BUILDER, plan_build
from agent.tools.dockerfile_gen import generate_dockerfile
from agent.tools.spa_server import __file__ as spa_server_path
from tests.support import sample_repos as samples
from tests.unit.tools.test_dockerfile_gen import assert_common, instructions


def analysed(builder: Callable[[Path], Path], tmp_path: Path) -> Analysis:
    return analyse_directory(builder(tmp_path / "repo"))


def ev(analysis: Analysis, field: str) -> list[tuple[str, int]]:
    return [(e.file, e.line) for e in analysis.evidence.get(field, [])]  # type: ignore[call-overload]


# ------------------------------------------------------------------ the repository's Dockerfile


def test_the_repository_dockerfile_comes_first(tmp_path: Path) -> None:
    a = analysed(samples.write_repo_dockerfile_app, tmp_path)
    assert a.framework == "express"  # still named, with evidence
    assert a.build == "repository_dockerfile"
    assert a.repo_dockerfile is not None
    assert a.repo_dockerfile.cmd == "node server.js --port $PORT"
    assert (a.repo_dockerfile.expose, a.repo_dockerfile.honours_port) == (8080, True)
    assert a.repo_dockerfile.base_images == ["node:22-bookworm-slim"]
    assert ("Dockerfile", 7) in ev(a, "dockerfile")  # the CMD line
    plan = plan_build(a, tmp_path / "repo")
    assert (plan.kind, plan.dockerfile_path, plan.dockerfile, plan.port) == (
        "repository_dockerfile",
        "Dockerfile",
        None,
        8080,
    )
    assert plan.description.startswith("Building with the repository's own Dockerfile")
    # Asked for ours instead: the generated one.
    ours = plan_build(a, tmp_path / "repo", prefer_generated=True)
    assert ours.kind == "generated_dockerfile" and ours.dockerfile is not None


def test_a_dockerfile_is_enough_for_a_stack_we_do_not_know(tmp_path: Path) -> None:
    a = analysed(samples.write_dockerfile_only_app, tmp_path)
    assert (a.language, a.framework, a.server, a.build) == (
        "other",
        "unknown",
        "dockerfile",
        "repository_dockerfile",
    )
    assert a.start_command == '["/svc"]' and a.port == 3000
    plan = plan_build(a, tmp_path / "repo")
    # EXPOSE 3000 and nothing reads PORT: Cloud Run must send traffic to 3000.
    assert plan.port == 3000 and plan.kind == "repository_dockerfile"
    with pytest.raises(ToolError, match="own Dockerfile"):
        generate_dockerfile(a)


# ------------------------------------------------------------------ buildpacks


@pytest.mark.parametrize(
    ("builder", "language", "framework", "tool", "version", "entry"),
    [
        (
            samples.write_spring_boot_app,
            "java",
            "spring-boot",
            "maven",
            "21",
            "src/main/java/com/example/demo/DemoApplication.java",
        ),
        (samples.write_php_slim_app, "php", "slim", "composer", "8.2", "public/index.php"),
        (samples.write_ruby_sinatra_app, "ruby", "sinatra", "bundler", "3.3", "config.ru"),
        (samples.write_dotnet_app, "dotnet", "aspnet", "dotnet", "8.0", "Api/Program.cs"),
    ],
)
def test_other_stacks_are_named_and_built_with_buildpacks(
    tmp_path: Path,
    builder: Callable[[Path], Path],
    language: str,
    framework: str,
    tool: str,
    version: str,
    entry: str,
) -> None:
    a = analysed(builder, tmp_path)
    assert (a.language, a.framework, a.build_tool, a.language_version) == (
        language,
        framework,
        tool,
        version,
    )
    assert a.entry_point == entry
    assert (a.evidence.get("language_version") and a.evidence.get("framework")) or (
        language == "ruby"  # sinatra's evidence is its gem line
    )
    assert a.build == "buildpacks" and "buildpacks" in a.build_reason
    plan = plan_build(a, tmp_path / "repo")
    assert (plan.kind, plan.builder, plan.dockerfile_path) == (
        "buildpacks",
        BUILDPACKS_BUILDER,
        None,
    )
    assert plan.build_env["GOOGLE_RUNTIME_VERSION"] == version
    assert "buildpacks" in plan.description


def test_local_runs_say_which_runtime_they_need(tmp_path: Path) -> None:
    php = analysed(samples.write_php_slim_app, tmp_path)
    assert php.local_run == "A local run needs PHP, which this machine does not have."
    java = analyse_directory(samples.write_java_http_app(tmp_path / "jv"))
    assert (java.framework, java.server, java.language_version) == ("java", "java", "17")
    assert java.entry_point == "src/main/java/demo/App.java"


def test_an_old_java_pin_moves_to_a_supported_one(tmp_path: Path) -> None:
    a = analyse_directory(samples.write_spring_boot_app(tmp_path / "old", java="11"))
    assert a.language_version == "17"
    assert any("Java 11" in w and "17" in w for w in a.warnings)


# ------------------------------------------------------------------ versions


def test_an_unusable_python_pin(tmp_path: Path) -> None:
    a = analysed(samples.write_old_pins, tmp_path)
    assert a.language_version == "3.10"
    assert any("Python 3.5" in w and "3.10" in w and "runtime.txt" in w for w in a.warnings)
    assert "FROM python:3.10-slim-bookworm" in generate_dockerfile(a).dockerfile


def test_an_unusable_node_pin(tmp_path: Path) -> None:
    a = analysed(samples.write_old_node, tmp_path)
    assert a.language_version == "18"
    assert any("Node 4" in w for w in a.warnings)
    assert "FROM node:18-bookworm-slim" in generate_dockerfile(a).dockerfile


def test_go_newer_than_the_images_we_know_fetches_its_toolchain(tmp_path: Path) -> None:
    repo = samples.write_go_app(tmp_path / "go")
    (repo / "go.mod").write_text("module example.com/hello\n\ngo 1.27\n")
    text = generate_dockerfile(analyse_directory(repo)).dockerfile
    assert "FROM golang:1.25-bookworm AS build" in text and "GOTOOLCHAIN=auto" in text


# ------------------------------------------------------------------ frameworks


def test_django_collectstatic_and_hosts(tmp_path: Path) -> None:
    a = analysed(samples.write_django_whitenoise_app, tmp_path)
    assert a.collectstatic and ev(a, "static_files") == [("mysite/settings.py", 13)]
    assert ev(a, "hosts") == [("mysite/settings.py", 7)]
    files = generate_dockerfile(a)
    items = assert_common(files)
    text = files.dockerfile
    collect = text.index(
        "RUN DJANGO_SECRET_KEY=deploychat-placeholder python manage.py collectstatic"
    )
    assert text.index("COPY . .") < collect < text.index("USER app")
    assert "from mysite.settings import *" in text and "> deploychat_settings.py" in text
    env = [args for kw, args in items if kw == "ENV" and "DJANGO_SETTINGS_MODULE" in args]
    assert env and "DEPLOYCHAT_ALLOWED_HOSTS=.run.app" in env[0]
    assert "DEPLOYCHAT_CSRF_TRUSTED_ORIGINS=https://*.run.app" in env[0]
    assert plan_build(a, tmp_path / "repo").env["DJANGO_SETTINGS_MODULE"] == "deploychat_settings"


def test_the_django_overlay_adds_hosts_from_the_environment(tmp_path: Path) -> None:
    from agent.tools.django_overlay import overlay_text

    (tmp_path / "site_settings.py").write_text("ALLOWED_HOSTS = ['example.com']\n")
    (tmp_path / "deploychat_settings.py").write_text(overlay_text("site_settings"))
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import deploychat_settings as s; print(s.ALLOWED_HOSTS, s.CSRF_TRUSTED_ORIGINS)",
        ],
        cwd=tmp_path,
        env={
            "DEPLOYCHAT_ALLOWED_HOSTS": ".run.app,localhost",
            "DEPLOYCHAT_CSRF_TRUSTED_ORIGINS": "https://*.run.app",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "['example.com', '.run.app', 'localhost'] ['https://*.run.app']"


def test_streamlit(tmp_path: Path) -> None:
    a = analysed(samples.write_streamlit_app, tmp_path)
    assert (a.framework, a.server, a.entry_point) == ("streamlit", "streamlit", "streamlit_app.py")
    assert ev(a, "entry_point") == [("streamlit_app.py", 1)]
    assert a.start_command == (
        "streamlit run streamlit_app.py --server.port $PORT --server.address 0.0.0.0 "
        "--server.headless true"
    )
    items = assert_common(generate_dockerfile(a))
    assert items[-1] == ("CMD", f"exec {a.start_command}")


def test_gradio(tmp_path: Path) -> None:
    a = analysed(samples.write_gradio_app, tmp_path)
    assert (a.framework, a.server, a.entry_point, a.port) == ("gradio", "python", "app.py", 7860)
    assert ("app.py", 9) in ev(a, "entry_point")  # demo.launch()
    items = assert_common(generate_dockerfile(a))
    assert items[-1] == (
        "CMD",
        "exec env GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=$PORT python app.py",
    )


def test_uvicorn_factory(tmp_path: Path) -> None:
    a = analysed(samples.write_fastapi_factory, tmp_path)
    assert (a.app_target, a.factory) == ("service.main:create_app", True)
    assert ev(a, "entry_point") == [("service/main.py", 4)]
    assert (
        a.start_command == "uvicorn service.main:create_app --factory --host 0.0.0.0 --port $PORT"
    )


def test_procfile_web_is_honoured(tmp_path: Path) -> None:
    a = analysed(samples.write_procfile_port_app, tmp_path)
    assert a.start_command == "gunicorn --bind 0.0.0.0:$PORT --workers 2 app:app"
    assert ("Procfile", 2) in ev(a, "procfile")
    items = assert_common(generate_dockerfile(a))
    assert items[-1] == ("CMD", "exec gunicorn --bind 0.0.0.0:$PORT --workers 2 app:app")


@pytest.mark.parametrize(
    ("builder", "framework", "output"),
    [
        (samples.write_vite_spa, "vite", "dist"),
        (lambda d: samples.write_vite_spa(d, out_dir="public_html"), "vite", "public_html"),
        (samples.write_cra_spa, "create-react-app", "build"),
        (samples.write_angular_spa, "angular", "dist/shop/browser"),
    ],
)
def test_single_page_apps_are_built_and_served_with_a_fallback(
    tmp_path: Path, builder: Callable[[Path], Path], framework: str, output: str
) -> None:
    a = analysed(builder, tmp_path)
    # Not the unbuilt index.html served as a static site.
    assert (a.language, a.framework, a.server, a.build_output) == ("node", framework, "spa", output)
    assert a.evidence.get("build")
    files = generate_dockerfile(a)
    items = assert_common(files)
    assert ("RUN", "npm run build") in items
    assert ("COPY", f"--from=build /app/{output}/ /usr/share/nginx/html/") in items
    assert "try_files $uri $uri/ /index.html;" in files.dockerfile


def test_next_standalone(tmp_path: Path) -> None:
    a = analysed(samples.write_nextjs_standalone, tmp_path)
    assert a.next_standalone and ev(a, "build") == [("next.config.js", 2)]
    items = assert_common(generate_dockerfile(a))
    assert ("COPY", "--from=build --chown=node:node /app/.next/standalone ./") in items
    assert items[-1] == ("CMD", '["node", "server.js"]')


def test_go_runtime_assets_are_copied(tmp_path: Path) -> None:
    a = analysed(samples.write_go_templates_app, tmp_path)
    assert a.assets == ["templates", "static"]
    assert [f for f, _ in ev(a, "assets")] == ["main.go", "main.go"]
    assert any("go 1.21" in w for w in a.warnings)
    items = instructions(generate_dockerfile(a).dockerfile)
    assert ("COPY", "--from=build /src/templates /app/templates") in items
    assert ("COPY", "--from=build /src/static /app/static") in items
    assert ("WORKDIR", "/app") in items


# ------------------------------------------------------------------ monorepos


def test_a_monorepo_lists_its_apps_and_asks(tmp_path: Path) -> None:
    repo = samples.write_monorepo(tmp_path / "shop")
    with pytest.raises(ToolError) as raised:
        analyse_repository(str(repo), workdir=tmp_path / "w", local_root=tmp_path)
    message = raised.value.message
    assert "`backend/` (python fastapi, backend/pyproject.toml)" in message
    assert "`frontend/` (node vite, frontend/package.json)" in message
    assert "Which one" in message
    # A question (ChooseApp), with the apps for the model to offer.
    assert [a["subfolder"] for a in raised.value.apps] == ["backend", "frontend"]  # type: ignore[attr-defined]

    a = analyse_repository(
        str(repo), workdir=tmp_path / "w", local_root=tmp_path, subfolder="backend"
    )
    assert (a.framework, a.subfolder, a.name) == ("fastapi", "backend", "shop-backend")
    plan = plan_build(a, repo)
    assert plan.context_dir == (repo / "backend").resolve() and "backend/" in plan.description


def test_a_monorepo_subfolder_of_a_git_url(tmp_path: Path) -> None:
    with samples.serve_sample(samples.write_monorepo, tmp_path, "shop") as url:
        a = analyse_repository(url, workdir=tmp_path / "w", subfolder="./frontend/")
    assert (a.framework, a.subfolder) == ("vite", "frontend")


@pytest.mark.parametrize("subfolder", ["../x", "backend/../../x", "/etc", "~"])
def test_a_subfolder_stays_inside_the_repository(tmp_path: Path, subfolder: str) -> None:
    repo = samples.write_monorepo(tmp_path / "shop")
    with pytest.raises(ToolError, match=r"subfolder|no folder"):
        analyse_repository(
            str(repo), workdir=tmp_path / "w", local_root=tmp_path, subfolder=subfolder
        )


def test_an_app_at_the_root_lists_the_others(tmp_path: Path) -> None:
    repo = samples.write_flask_app(tmp_path / "app")
    samples.write_express_app(repo / "services" / "notify")
    a = analyse_directory(repo)
    assert a.framework == "flask"
    assert [(o.subfolder, o.framework) for o in a.other_apps] == [("services/notify", "express")]


# ------------------------------------------------------------------ the SPA server used locally


@pytest.fixture
def spa_port(tmp_path: Path) -> Iterator[int]:
    import socket

    (tmp_path / "dist" / "assets").mkdir(parents=True)
    (tmp_path / "dist" / "index.html").write_text("<h1>spa</h1>")
    (tmp_path / "dist" / "assets" / "a.js").write_text("1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, spa_server_path, str(tmp_path / "dist"), str(port), "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=5)


def test_the_local_spa_server_falls_back_to_index_html(spa_port: int) -> None:
    base = f"http://127.0.0.1:{spa_port}"
    with urllib.request.urlopen(f"{base}/orders/42", timeout=5) as resp:
        assert resp.status == 200 and resp.read() == b"<h1>spa</h1>"
    with urllib.request.urlopen(f"{base}/assets/a.js", timeout=5) as resp:
        assert resp.read() == b"1"


@pytest.mark.parametrize(
    ("builder", "needs"),
    [
        (samples.write_php_slim_app, "needs PHP"),
        (samples.write_dockerfile_only_app, "needs Docker"),
        (samples.write_dotnet_app, "needs the .NET SDK"),
    ],
)
def test_a_local_run_says_what_it_needs_before_anything_starts(
    tmp_path: Path, builder: Callable[[Path], Path], needs: str
) -> None:
    from agent.tools.local_steps import can_run_here

    with pytest.raises(ToolError, match=needs) as raised:
        can_run_here(analysed(builder, tmp_path))
    assert "Cloud Run" in raised.value.message


def test_an_api_without_a_root_page_is_checked_on_its_health_route(tmp_path: Path) -> None:
    repo = samples.write_fastapi_app(tmp_path / "api")
    main = (repo / "main.py").read_text().replace('@app.get("/")', '@app.get("/healthz")')
    (repo / "main.py").write_text(main)
    a = analyse_directory(repo)
    assert a.health_path == "/healthz" and ev(a, "health") == [("main.py", 9)]
    # With a root page, `/` it is.
    assert analyse_directory(samples.write_flask_app(tmp_path / "flask")).health_path == "/"


def test_the_summary_says_how_it_builds(tmp_path: Path) -> None:
    from agent.toolbox import describe_analysis

    other = describe_analysis(analysed(samples.write_dockerfile_only_app, tmp_path))
    assert other.startswith("**repo** is an app I don't build myself, but it has its own")
    assert "repository's own Dockerfile" in other
    php = describe_analysis(analyse_directory(samples.write_php_slim_app(tmp_path / "php")))
    assert php.startswith("**php** is a PHP 8.2 slim app (composer)") and "buildpacks" in php
    assert "A local run needs PHP" in php
