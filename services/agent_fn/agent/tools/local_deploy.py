"""Runs an analysed app on this machine: install its dependencies, start it, check it answers.

The app runs from a copy under `state_dir/<name>/` (its own virtual environment or
node_modules next to it), so the source (maybe a clone that gets cleaned up) can go away, and a
new deployment of the same app replaces the old run. The server is a child in its own session
that outlives the turn that started it.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .analysis_model import Analysis
from .commands import start_argv
from .deploy_result import DeployResult
from .errors import Cancelled, ToolError
from .process import kill_group, log_tail, run_step
from .progress import CancelCheck, ProgressCallback, ProgressReporter

INSTALL_TIMEOUT_S = 600.0
_COPY_IGNORE = shutil.ignore_patterns(
    ".git", "node_modules", ".venv", "venv", "__pycache__", ".next", ".pytest_cache"
)
_INSTALL_START, _INSTALL_END = 10, 60
_PASSED_ENV = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ",
        "TMPDIR", "TERM", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
        "COREPACK_HOME", "GOPATH", "GOCACHE", "GOMODCACHE", "GOPROXY", "GOFLAGS",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    }
)  # fmt: skip
_PASSED_PREFIXES = ("UV_", "PIP_", "NPM_CONFIG_", "npm_config_", "YARN_", "PYENV")


def deploy_local(
    source_dir: Path,
    analysis: Analysis,
    *,
    state_dir: Path,
    on_progress: ProgressCallback,
    should_cancel: CancelCheck,
    health_timeout_s: float = 60,
    env: Mapping[str, str] | None = None,
    deployment_id: str | None = None,
    install_timeout_s: float = INSTALL_TIMEOUT_S,
    progress_interval_s: float = 2.0,
) -> DeployResult:
    """Install and start the app on 127.0.0.1 under `state_dir/<name>/`: its URL and pid.

    `env` is given to the app (PORT is always ours). The process outlives this call; end it
    with stop_local(result.pid).
    """
    progress = ProgressReporter(on_progress, should_cancel, min_interval_s=progress_interval_s)
    deployment_id = deployment_id or uuid.uuid4().hex[:12]
    progress.report("preparing", 5, f"Preparing a local run of {analysis.name}")
    progress.check_cancel()
    if not source_dir.is_dir():
        raise ToolError(f"There is no directory {source_dir} to deploy.")
    home = state_dir.resolve() / analysis.name
    home.mkdir(parents=True, exist_ok=True)
    _stop_previous(home)
    app_dir = home / "app"
    shutil.rmtree(app_dir, ignore_errors=True)
    shutil.copytree(source_dir, app_dir, symlinks=True, ignore=_copy_ignore(state_dir.resolve()))
    port = _pick_port(analysis)
    install_log = home / "install.log"
    install_log.write_text("")

    steps = _install_steps(analysis, home, app_dir)
    child_env = _environment(analysis, home, app_dir, port, env or {})
    progress.report("installing", _INSTALL_START, _install_message(analysis))
    _install(
        steps,
        progress,
        cwd=app_dir,
        env=child_env,
        log_path=install_log,
        timeout_s=install_timeout_s,
    )

    progress.check_cancel()
    argv = _start_argv(analysis, home, app_dir, port)
    progress.report("starting", 70, f"Starting {analysis.name} ({analysis.server}) on port {port}")
    log_path = home / "app.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            cwd=app_dir,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: it outlives the turn, and we can end it all
        )
    (home / "run.json").write_text(
        json.dumps({"pid": proc.pid, "port": port, "deployment_id": deployment_id})
    )
    try:
        progress.report("health-check", 90, f"Waiting for http://127.0.0.1:{port}/ to answer")
        _wait_healthy(proc, port, log_path, health_timeout_s, should_cancel)
    except BaseException:
        kill_group(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        raise
    url = f"http://127.0.0.1:{port}"
    progress.report("done", 100, f"{analysis.name} is running at {url}")
    return DeployResult(
        kind="local",
        url=url,
        port=port,
        pid=proc.pid,
        log_path=str(log_path),
        deployment_id=deployment_id,
    )


def _copy_ignore(state_dir: Path) -> Callable[[str, list[str]], set[str]]:
    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = set(_COPY_IGNORE(directory, names))
        # The state dir inside the source (deploying `.` from the project itself) would be
        # copied into itself, without end.
        skipped.update(n for n in names if Path(directory, n).resolve() == state_dir)
        return skipped

    return ignore


def stop_local(pid: int) -> bool:
    """End a locally deployed app (its whole process group). False if it was not running."""
    return kill_group(pid)


# ---------------------------------------------------------------- steps


def _install(
    steps: list[tuple[str, list[str]]],
    progress: ProgressReporter,
    *,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    timeout_s: float,
) -> None:
    if not steps:
        progress.report("installing", _INSTALL_END, "Nothing to install")
    share = (_INSTALL_END - _INSTALL_START) / max(1, len(steps))
    for index, (what, argv) in enumerate(steps):
        low = _INSTALL_START + index * share

        def tick(elapsed: float, low: float = low, what: str = what) -> None:
            # No real percentage comes out of pip or npm: creep towards the step's end.
            done = 1 - math.exp(-elapsed / 20)
            progress.report(
                "installing", int(low + share * 0.9 * done), f"{what} ({elapsed:.0f} s)"
            )

        run_step(
            argv,
            cwd=cwd,
            env=env,
            log_path=log_path,
            should_cancel=progress.cancel_requested,
            timeout_s=timeout_s,
            what=what,
            on_tick=tick,
        )
        progress.report("installing", int(low + share), f"{what}: done")


def _install_message(analysis: Analysis) -> str:
    if analysis.language == "python":
        running = f"{sys.version_info.major}.{sys.version_info.minor}"
        wanted = analysis.language_version
        note = (
            f" (Python {running}; the app asks for {wanted})"
            if wanted not in (None, running)
            else ""
        )
        return f"Creating a virtual environment and installing with {_python_installer()}{note}"
    if analysis.language == "node":
        return f"Installing dependencies with {analysis.package_manager}"
    if analysis.language == "go":
        return "Building with go build"
    return "Serving the files as they are"


def _python_installer() -> str:
    return "uv" if _uv() else "pip"


@functools.cache
def _uv() -> str | None:
    """The uv binary itself, not a pyenv shim (which picks a Python by the app's .python-version
    and may find no uv there)."""
    found = shutil.which("uv")
    if found and "/shims/" in found and (pyenv := shutil.which("pyenv")):
        try:
            out = subprocess.run(
                [pyenv, "which", "uv"], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return found
        real = out.stdout.strip()
        return real if out.returncode == 0 and os.path.isfile(real) else found
    return found


def _install_steps(analysis: Analysis, home: Path, app_dir: Path) -> list[tuple[str, list[str]]]:
    if analysis.language == "python":
        return _python_steps(analysis, home, app_dir)
    if analysis.language == "node":
        return _node_steps(analysis)
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
                [go, "build", "-o", str(home / "server"), analysis.app_target],
            )
        ]
    return []


def _python_steps(analysis: Analysis, home: Path, app_dir: Path) -> list[tuple[str, list[str]]]:
    venv = home / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    python = str(venv / "bin" / "python")
    uv = _uv()
    # The interpreter running us: a local run must not depend on downloading another Python.
    if uv:
        steps = [
            (
                "creating the virtual environment",
                [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
            )
        ]
        install = [uv, "pip", "install", "--python", python]
    else:
        steps = [("creating the virtual environment", [sys.executable, "-m", "venv", str(venv)])]
        install = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    extras = list(analysis.extra_packages)
    manager, manifest = analysis.package_manager, analysis.manifest
    if manager == "uv" and uv:
        steps.append(
            (
                "installing dependencies with uv sync",
                [uv, "sync", "--frozen", "--no-dev", "--python", sys.executable],
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
        requirements = _pipenv_requirements(app_dir, home)
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
    return steps


def _pipenv_requirements(app_dir: Path, home: Path) -> Path:
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
    out = home / "requirements-from-pipfile.txt"
    out.write_text("\n".join(lines) + "\n")
    return out


def _node_steps(analysis: Analysis) -> list[tuple[str, list[str]]]:
    manager = analysis.package_manager
    tool = shutil.which(manager) if manager in ("yarn", "pnpm") else None
    if manager in ("yarn", "pnpm") and tool is None:
        corepack = shutil.which("corepack")
        if corepack is None:
            raise ToolError(f"{manager} is not installed on this machine (nor corepack).")
        prefix = [corepack, manager]
    else:
        prefix = [tool or _need("npm")]
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
        steps.append(("building with npm run build", [_need("npm"), "run", "build"]))
    return steps


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolError(f"{tool} is not installed on this machine, so I cannot run the app here.")
    return path


def _environment(
    analysis: Analysis, home: Path, app_dir: Path, port: int, extra: Mapping[str, str]
) -> dict[str, str]:
    # Only what installers and servers need from our environment: the agent's own settings
    # and credentials are none of the app's business.
    env = {
        k: v for k, v in os.environ.items() if k in _PASSED_ENV or k.startswith(_PASSED_PREFIXES)
    }
    env.pop("UV_PROJECT_ENVIRONMENT", None)
    paths = [str(app_dir / "node_modules" / ".bin")]
    if analysis.language == "python":
        venv = home / "venv"
        env["VIRTUAL_ENV"] = str(venv)
        env["UV_PROJECT_ENVIRONMENT"] = str(venv)
        env["POETRY_VIRTUALENVS_CREATE"] = "false"
        env["PYTHONUNBUFFERED"] = "1"
        paths.insert(0, str(venv / "bin"))
    env["PATH"] = os.pathsep.join([*paths, env.get("PATH", "")])
    env.update(extra)
    env["PORT"] = str(port)  # last: the port we chose and health-check wins
    return env


def _start_argv(analysis: Analysis, home: Path, app_dir: Path, port: int) -> list[str]:
    argv = start_argv(analysis.server, analysis.app_target, port=str(port), host="127.0.0.1")
    if analysis.server in ("gunicorn", "uvicorn"):
        argv[0] = str(home / "venv" / "bin" / argv[0])
    elif analysis.server == "next":
        argv[0] = str(app_dir / "node_modules" / ".bin" / "next")
    elif analysis.server == "go":
        argv = [str(home / "server")]
    elif analysis.server == "static":
        argv[0] = sys.executable
    else:
        argv[0] = _need(argv[0])
    return argv


def _pick_port(analysis: Analysis) -> int:
    ignores_port = analysis.server in ("node", "npm", "go") and not analysis.reads_port_env
    if ignores_port and analysis.port is not None:
        # It will listen where its code says, whatever PORT is.
        if not _port_free(analysis.port):
            raise ToolError(
                f"The app always listens on port {analysis.port}, which is already in use here."
            )
        return analysis.port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_healthy(
    proc: subprocess.Popen[bytes],
    port: int,
    log_path: Path,
    timeout_s: float,
    should_cancel: CancelCheck,
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if should_cancel():
            raise Cancelled("cancelled during the health check")
        code = proc.poll()
        if code is not None:
            raise ToolError(
                f"The app exited (code {code}) before answering HTTP.\n{log_tail(log_path)}"
            )
        status = _get_status(port)
        if status is not None and status < 500:
            return
        if time.monotonic() > deadline:
            answer = f"answered HTTP {status}" if status else "did not answer"
            raise ToolError(
                f"The app {answer} on http://127.0.0.1:{port}/ within {timeout_s:g} s, so I "
                f"stopped it.\n{log_tail(log_path)}"
            )
        time.sleep(0.25)


def _get_status(port: int) -> int | None:
    # One plain request, no redirects followed: any answer below 500 means the app is up.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _stop_previous(home: Path) -> None:
    """End the app's previous local run, if it is still the process we started."""
    try:
        run = json.loads((home / "run.json").read_text())
        pid = int(run["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return  # gone, or no /proc to tell whether the pid was reused: leave it alone
    if Path(cwd) == home / "app":
        kill_group(pid)
