"""What a local run of each stack takes: the install and build steps, the environment, and the
command that starts it. local_deploy.py runs them; this module only decides them."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import django_overlay
from .analysis_model import Analysis
from .child_env import minimal_env
from .commands import start_argv
from .errors import ToolError
from .python_runtime import Interpreter, pick_interpreter

Step = tuple[str, list[str]]
SPA_SERVER = Path(__file__).with_name("spa_server.py")
_JAVA_PACKAGE = re.compile(r"^\s*package\s+([\w.]+)\s*;")


def can_run_here(analysis: Analysis) -> None:
    """ToolError saying what a local run would need, when this machine lacks it."""
    if analysis.local_run:
        raise ToolError(
            f"{analysis.local_run} Deploy it to Cloud Run instead: the build runs there."
        )
    if analysis.language == "other":
        raise ToolError(
            f"{analysis.name} builds only with its own {analysis.dockerfile}, and a local run of "
            "a Dockerfile needs Docker, which I don't use here. Deploy it to Cloud Run instead."
        )
    if analysis.language == "go" and shutil.which("go") is None:
        raise ToolError(
            "A local run of a Go app needs Go, which this machine does not have. Deploy it to "
            "Cloud Run instead: the build runs there."
        )
    if analysis.server == "buildpack":
        raise ToolError(
            f"A local run of a {analysis.language} app needs its runtime, which this machine "
            "does not have. Deploy it to Cloud Run instead: buildpacks build it there."
        )


def interpreter(analysis: Analysis) -> Interpreter | None:
    return pick_interpreter(analysis.language_version) if analysis.language == "python" else None


def install_message(analysis: Analysis, python: Interpreter | None) -> str:
    if analysis.language == "python" and python is not None:
        note = f" ({python.note})" if python.note else ""
        version = f"Python {python.version[0]}.{python.version[1]}"
        return (
            f"Creating a virtual environment ({version}) and installing with {_installer()}{note}"
        )
    if analysis.server == "spa":
        manager, framework = analysis.package_manager, analysis.framework
        return f"Installing with {manager}, then building the {framework} app"
    if analysis.language == "node":
        here = node_major()
        wanted = analysis.language_version
        note = (
            f" (Node {here} here; the app asks for {wanted}, which this machine does not have)"
            if here and wanted and here != wanted
            else ""
        )
        return f"Installing dependencies with {analysis.package_manager}{note}"
    if analysis.language == "go":
        return "Building with go build"
    if analysis.language == "java":
        return f"Building with {analysis.build_tool}"
    return "Serving the files as they are"


@functools.cache
def node_major() -> str | None:
    node = shutil.which("node")
    if node is None:
        return None
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, env=minimal_env()
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().lstrip("v").split(".")[0] or None


def _installer() -> str:
    return "uv" if uv_binary() else "pip"


@functools.cache
def uv_binary() -> str | None:
    """A uv that runs, never a pyenv shim: a shim picks a Python by the app's .python-version or
    the global one, which may have no uv (the shim then exits 127)."""
    for candidate in _uv_candidates():
        if _runs(candidate):
            return candidate
    return None


def _uv_candidates() -> list[str]:
    found = [
        str(Path(d) / "uv")
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and not d.rstrip("/").endswith("/shims") and (Path(d) / "uv").is_file()
    ]
    # uv installed into one of pyenv's Pythons, found by its path rather than through the shim.
    if pyenv := shutil.which("pyenv"):
        try:
            out = subprocess.run(
                [pyenv, "whence", "--path", "uv"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
                env=minimal_env(),
            )
            found += [line.strip() for line in out.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.TimeoutExpired):
            pass
    return list(dict.fromkeys(found))


def _runs(uv: str) -> bool:
    try:
        out = subprocess.run(
            [uv, "--version"], capture_output=True, timeout=10, check=False, env=minimal_env()
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def install_steps(
    analysis: Analysis, run_dir: Path, app_dir: Path, python: Interpreter | None
) -> list[Step]:
    if analysis.language == "python":
        assert python is not None
        return python_steps(analysis, run_dir, app_dir, python)
    if analysis.language == "node":
        return node_steps(analysis)
    if analysis.language == "go":
        go = shutil.which("go")
        if go is None:
            raise ToolError(
                "Go is not installed on this machine, so I cannot build the app locally. "
                "Deploy it to Cloud Run instead: the build runs there."
            )
        return [
            (
                "building with go build",
                [go, "build", "-o", str(run_dir / "server"), analysis.app_target],
            )
        ]
    if analysis.language == "java":
        return java_steps(analysis, app_dir)
    return []


def python_steps(
    analysis: Analysis, run_dir: Path, app_dir: Path, python: Interpreter
) -> list[Step]:
    venv = run_dir / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    venv_python = str(venv / "bin" / "python")
    uv = uv_binary()
    # An interpreter on this machine: a local run never downloads a Python.
    if uv:
        steps = [
            (
                "creating the virtual environment",
                [uv, "venv", "--quiet", "--python", python.path, str(venv)],
            )
        ]
        install = [uv, "pip", "install", "--python", venv_python]
    else:
        steps = [("creating the virtual environment", [python.path, "-m", "venv", str(venv)])]
        install = [venv_python, "-m", "pip", "install", "--disable-pip-version-check"]
    extras = list(analysis.extra_packages)
    manager, manifest = analysis.package_manager, analysis.manifest
    if manager == "uv" and uv:
        steps.append(
            (
                "installing dependencies with uv sync",
                [uv, "sync", "--frozen", "--no-dev", "--python", venv_python],
            )
        )
    elif manager == "poetry":
        steps.append(("installing poetry", [*install, "poetry"]))
        steps.append(
            (
                "installing dependencies with poetry",
                [str(venv / "bin" / "poetry"), "install", "--only", "main", "--no-root"],
            )
        )
    elif manager == "pipenv":
        requirements = _pipenv_requirements(app_dir, run_dir)
        steps.append(("installing dependencies", [*install, "-r", str(requirements)]))
    elif manifest and manifest.endswith(".txt"):
        steps.append(("installing dependencies", [*install, "-r", manifest, *extras]))
        extras = []
    elif manifest == "pyproject.toml":
        # uv reads the dependencies straight from pyproject; pip needs to build the project.
        deps = ["-r", "pyproject.toml"] if uv else ["."]
        steps.append(("installing dependencies", [*install, *deps, *extras]))
        extras = []
    if extras:
        steps.append((f"installing {', '.join(extras)}", [*install, *extras]))
    if analysis.framework == "django" and analysis.django_settings:
        (app_dir / f"{django_overlay.MODULE}.py").write_text(
            django_overlay.overlay_text(analysis.django_settings)
        )
        if analysis.collectstatic:
            steps.append(
                (
                    "collecting static files",
                    [venv_python, "manage.py", "collectstatic", "--noinput"],
                )
            )
    return steps


def _pipenv_requirements(app_dir: Path, run_dir: Path) -> Path:
    """Pipfile.lock's (or else Pipfile's) default packages as a requirements file.

    Read as data rather than run through pipenv, which would need installing first.
    """
    lines: list[str] = []
    lock = app_dir / "Pipfile.lock"
    if lock.is_file():
        data: Any = json.loads(lock.read_text())
        for name, spec in (data.get("default") or {}).items():
            version = spec.get("version", "") if isinstance(spec, dict) else ""
            lines.append(f"{name}{version}")
    else:
        import tomllib

        data = tomllib.loads((app_dir / "Pipfile").read_text())
        for name, spec in (data.get("packages") or {}).items():
            version = spec if isinstance(spec, str) else spec.get("version", "*")
            lines.append(name if version == "*" else f"{name}{version}")
    out = run_dir / "requirements-from-pipfile.txt"
    out.write_text("\n".join(lines) + "\n")
    return out


def node_steps(analysis: Analysis) -> list[Step]:
    manager = analysis.package_manager
    tool = shutil.which(manager) if manager in ("yarn", "pnpm") else None
    if manager in ("yarn", "pnpm") and tool is None:
        corepack = shutil.which("corepack")
        if corepack is None:
            raise ToolError(f"{manager} is not installed on this machine (nor corepack).")
        prefix = [corepack, manager]
    else:
        prefix = [tool or need("npm")]
    if manager == "yarn":
        steps = [("installing dependencies with yarn", [*prefix, "install", "--frozen-lockfile"])]
    elif manager == "pnpm":
        steps = [("installing dependencies with pnpm", [*prefix, "install", "--frozen-lockfile"])]
    else:
        verb = "ci" if analysis.lock_file else "install"
        steps = [
            (f"installing dependencies with npm {verb}", [*prefix, verb, "--no-audit", "--no-fund"])
        ]
    if analysis.build_script:
        steps.append(("building with npm run build", [need("npm"), "run", "build"]))
    if analysis.next_standalone:
        # The standalone server serves static files only from beside it, as in the image.
        copy = (
            "cp -r .next/static .next/standalone/.next/ "
            "&& if [ -d public ]; then cp -r public .next/standalone/; fi"
        )
        steps.append(("preparing the standalone server", ["/bin/sh", "-c", copy]))
    return steps


def java_steps(analysis: Analysis, app_dir: Path) -> list[Step]:
    if analysis.package_manager == "maven":
        wrapper = app_dir / "mvnw"
        tool = str(wrapper) if wrapper.is_file() else need("mvn")
        # A Spring Boot app runs from its repackaged jar; a plain one from its classes, which
        # `compile` makes without the packaging plugins (fewer downloads, none if cached).
        goal = "package" if analysis.framework == "spring-boot" else "compile"
        return [("building with Maven", [tool, "-B", "-q", "-DskipTests", goal])]
    wrapper = app_dir / "gradlew"
    tool = str(wrapper) if wrapper.is_file() else need("gradle")
    return [("building with Gradle", [tool, "--no-daemon", "-q", "build", "-x", "test"])]


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolError(f"{tool} is not installed on this machine, so I cannot run the app here.")
    return path


def environment(
    analysis: Analysis, run_dir: Path, app_dir: Path, port: int, extra: dict[str, str]
) -> dict[str, str]:
    # Only what installers and servers need from our environment: the agent's own settings
    # and credentials are none of the app's business.
    env = minimal_env()
    env.pop("UV_PROJECT_ENVIRONMENT", None)
    paths = [str(app_dir / "node_modules" / ".bin")]
    if analysis.language == "python":
        venv = run_dir / "venv"
        env["VIRTUAL_ENV"] = str(venv)
        env["UV_PROJECT_ENVIRONMENT"] = str(venv)
        env["UV_PYTHON_DOWNLOADS"] = "never"
        env["POETRY_VIRTUALENVS_CREATE"] = "false"
        env["PYTHONUNBUFFERED"] = "1"
        paths.insert(0, str(venv / "bin"))
    if analysis.framework == "django" and analysis.django_settings:
        env["DJANGO_SETTINGS_MODULE"] = django_overlay.MODULE
        env[django_overlay.HOSTS_ENV] = "127.0.0.1,localhost"
        env[django_overlay.ORIGINS_ENV] = f"http://127.0.0.1:{port},http://localhost:{port}"
        # Settings that insist on a variable (os.environ["X"]) get a local placeholder.
        for name in analysis.build_required_env:
            env.setdefault(name, django_overlay.placeholder(name))
    if analysis.framework == "gradio":
        env["GRADIO_SERVER_NAME"] = "127.0.0.1"
        env["GRADIO_SERVER_PORT"] = str(port)
        env["GRADIO_ANALYTICS_ENABLED"] = "False"
    if analysis.framework == "streamlit":
        env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    if analysis.language == "java":
        env["SERVER_PORT"] = str(port)  # Spring Boot's server.port
    if analysis.next_standalone:
        env["HOSTNAME"] = "127.0.0.1"  # where Next's standalone server listens
    env["PATH"] = ":".join([*paths, env.get("PATH", "")])
    env.update(extra)
    env["PORT"] = str(port)  # last: the port we chose and health-check wins
    return env


def start(analysis: Analysis, run_dir: Path, app_dir: Path, port: int) -> list[str]:
    host = "127.0.0.1"
    if analysis.procfile_web and analysis.start_command == analysis.procfile_web:
        # The project's own Procfile command, as Heroku-style platforms run it.
        return ["/bin/sh", "-c", f"exec {analysis.start_command}"]
    if analysis.server == "spa":
        folder = app_dir / (analysis.build_output or "dist")
        return [sys.executable, str(SPA_SERVER), str(folder), str(port), host]
    if analysis.server == "java":
        return _java_start(analysis, app_dir, port)
    if analysis.server == "next" and analysis.next_standalone:
        return [need("node"), str(app_dir / ".next" / "standalone" / "server.js")]
    argv = start_argv(
        analysis.server, analysis.app_target, port=str(port), host=host, factory=analysis.factory
    )
    if analysis.server in ("gunicorn", "uvicorn", "streamlit", "python"):
        argv[0] = str(run_dir / "venv" / "bin" / argv[0])
    elif analysis.server == "next":
        argv[0] = str(app_dir / "node_modules" / ".bin" / "next")
    elif analysis.server == "go":
        argv = [str(run_dir / "server")]
    elif analysis.server == "static":
        argv[0] = sys.executable
    else:
        argv[0] = need(argv[0])
    return argv


def _java_start(analysis: Analysis, app_dir: Path, port: int) -> list[str]:
    java = need("java")
    out = app_dir / (analysis.build_output or "target")
    jars = sorted(
        (j for j in out.glob("*.jar") if not j.name.endswith(("-plain.jar", "-sources.jar"))),
        key=lambda j: j.stat().st_size,
        reverse=True,
    )
    if analysis.framework == "spring-boot" and jars:
        return [java, "-jar", str(jars[0]), f"--server.port={port}", "--server.address=127.0.0.1"]
    classes = out / "classes"
    main = _java_main_class(app_dir / analysis.entry_point)
    if main and classes.is_dir():
        return [java, "-cp", str(classes), main]
    if jars:
        return [java, "-jar", str(jars[0])]
    raise ToolError(f"The build left no jar or classes in {out.name}/ to run.")


def _java_main_class(source: Path) -> str | None:
    try:
        text = source.read_text(errors="replace")
    except OSError:
        return None
    package = next((m.group(1) for m in map(_JAVA_PACKAGE.match, text.splitlines()) if m), None)
    return f"{package}.{source.stem}" if package else source.stem
