"""Runs an analysed app on this machine: install its dependencies, start it, check it answers.

Each deployment runs from a copy under `state_dir/<name>/runs/<deployment>/` (its own virtual
environment or node_modules beside it), so the source (maybe a clone that gets cleaned up) can
go away. A re-deployment starts beside the running one and takes over only once it answers, as
a Cloud Run revision does: if it fails or is cancelled, the old one keeps running. The server is
a child in its own session that outlives the turn that started it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from . import local_steps
from .analysis_model import Analysis
from .build_plan import context_dir
from .deploy_result import DeployResult
from .errors import Cancelled, ToolError
from .process import kill_group, log_tail, run_step
from .progress import CancelCheck, ProgressCallback, ProgressReporter

INSTALL_TIMEOUT_S = 600.0
# A 4xx or 5xx answer that lasts this long is the app's answer, not its start-up.
STEADY_ERROR_S = 5.0
_COPY_IGNORE = shutil.ignore_patterns(
    ".git", "node_modules", ".venv", "venv", "__pycache__", ".next", ".pytest_cache"
)
_INSTALL_START, _INSTALL_END = 10, 60


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
    """Install and start the app on 127.0.0.1: its URL and pid.

    `source_dir` is the source's root; the app's `analysis.subfolder` is applied here. `env` is
    given to the app (PORT is always ours). The process outlives this call; end it with
    stop_local(result.pid). A previous run of the same app is stopped only once this one
    answers.
    """
    progress = ProgressReporter(on_progress, should_cancel, min_interval_s=progress_interval_s)
    deployment_id = deployment_id or uuid.uuid4().hex[:12]
    progress.report("preparing", 5, f"Preparing a local run of {analysis.name}")
    progress.check_cancel()
    if not source_dir.is_dir():
        raise ToolError(f"There is no directory {source_dir} to deploy.")
    source_dir = context_dir(source_dir, analysis)
    local_steps.can_run_here(analysis)
    home = state_dir.resolve() / analysis.name
    run_dir = home / "runs" / _safe(deployment_id)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    try:
        return _deploy(
            source_dir,
            analysis,
            home=home,
            run_dir=run_dir,
            state_dir=state_dir.resolve(),
            progress=progress,
            should_cancel=should_cancel,
            health_timeout_s=health_timeout_s,
            env=dict(env or {}),
            deployment_id=deployment_id,
            install_timeout_s=install_timeout_s,
        )
    except BaseException:
        # The old run (if any) is untouched; this attempt leaves nothing behind.
        shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _deploy(
    source_dir: Path,
    analysis: Analysis,
    *,
    home: Path,
    run_dir: Path,
    state_dir: Path,
    progress: ProgressReporter,
    should_cancel: CancelCheck,
    health_timeout_s: float,
    env: dict[str, str],
    deployment_id: str,
    install_timeout_s: float,
) -> DeployResult:
    app_dir = run_dir / "app"
    shutil.copytree(source_dir, app_dir, symlinks=True, ignore=_copy_ignore(state_dir))
    port, stop_first = _pick_port(analysis, home)
    install_log = run_dir / "install.log"
    install_log.write_text("")
    python = local_steps.interpreter(analysis)
    steps = local_steps.install_steps(analysis, run_dir, app_dir, python)
    child_env = local_steps.environment(analysis, run_dir, app_dir, port, env)
    progress.report("installing", _INSTALL_START, local_steps.install_message(analysis, python))
    _install(
        steps,
        progress,
        cwd=app_dir,
        env=child_env,
        log_path=install_log,
        timeout_s=install_timeout_s,
    )

    progress.check_cancel()
    argv = local_steps.start(analysis, run_dir, app_dir, port)
    if stop_first:
        # It always listens on the same port, so the old run must make way before it starts.
        progress.report("starting", 65, f"Stopping the previous run: the app always uses {port}")
        _stop_previous(home)
    progress.report("starting", 70, f"Starting {analysis.name} ({analysis.server}) on port {port}")
    log_path = run_dir / "app.log"
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
    try:
        path = analysis.health_path or "/"
        progress.report("health-check", 90, f"Waiting for http://127.0.0.1:{port}{path} to answer")
        _wait_healthy(proc, port, path, log_path, health_timeout_s, should_cancel)
    except BaseException:
        kill_group(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        raise
    # The new run answers: now, and only now, it replaces the old one.
    _stop_previous(home)
    (home / "run.json").write_text(
        json.dumps(
            {"pid": proc.pid, "port": port, "deployment_id": deployment_id, "dir": str(run_dir)}
        )
    )
    _remove_other_runs(home, run_dir)
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


def _safe(deployment_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in deployment_id)[:80] or "run"


def _remove_other_runs(home: Path, keep: Path) -> None:
    for run in (home / "runs").iterdir():
        if run != keep:
            shutil.rmtree(run, ignore_errors=True)


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


def _pick_port(analysis: Analysis, home: Path) -> tuple[int, bool]:
    """The port to run on, and whether the previous run must stop first to free it."""
    ignores_port = analysis.server in ("node", "npm", "go") and not analysis.reads_port_env
    if ignores_port and analysis.port is not None:
        # It will listen where its code says, whatever PORT is.
        if _port_free(analysis.port):
            return analysis.port, False
        previous = _previous_run(home)
        if previous is not None and previous.get("port") == analysis.port:
            return analysis.port, True
        raise ToolError(
            f"The app always listens on port {analysis.port}, which is already in use here."
        )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port, False


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
    path: str,
    log_path: Path,
    timeout_s: float,
    should_cancel: CancelCheck,
) -> None:
    """Until the app answers 2xx or 3xx on `path`; a steady 4xx or 5xx is a failure."""
    deadline = time.monotonic() + timeout_s
    url = f"http://127.0.0.1:{port}{path}"
    error_since: float | None = None
    while True:
        if should_cancel():
            raise Cancelled("cancelled during the health check")
        code = proc.poll()
        if code is not None:
            raise ToolError(
                f"The app exited (code {code}) before answering HTTP.\n{log_tail(log_path)}"
            )
        status = _get_status(port, path)
        now = time.monotonic()
        if status is not None and 200 <= status < 400:
            return
        if status is not None:
            error_since = now if error_since is None else error_since
            if now - error_since >= STEADY_ERROR_S:
                raise ToolError(
                    f"The app answered HTTP {status} on {url}, not a success (2xx or 3xx), so "
                    f"I stopped it.\n{log_tail(log_path)}"
                )
        else:
            error_since = None
        if now > deadline:
            answer = f"answered HTTP {status}" if status else "did not answer"
            raise ToolError(
                f"The app {answer} on {url} within {timeout_s:g} s, so I stopped it."
                f"\n{log_tail(log_path)}"
            )
        time.sleep(0.25)


def _get_status(port: int, path: str = "/") -> int | None:
    # One plain request, no redirects followed: a redirect (to a login page, say) is an answer.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}"})
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _previous_run(home: Path) -> dict[str, object] | None:
    try:
        run = json.loads((home / "run.json").read_text())
    except (OSError, ValueError):
        return None
    return run if isinstance(run, dict) else None


def _stop_previous(home: Path) -> None:
    """End the app's previous local run, if it is still the process we started."""
    run = _previous_run(home)
    try:
        pid = int(run["pid"]) if run else None  # type: ignore[call-overload]
    except (KeyError, TypeError, ValueError):
        return
    if pid is None:
        return
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return  # gone, or no /proc to tell whether the pid was reused: leave it alone
    if Path(cwd).is_relative_to(home):
        kill_group(pid)
    with contextlib.suppress(OSError):
        (home / "run.json").unlink()
