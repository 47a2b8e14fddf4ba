"""deploy_local for real: a virtual environment, an install (uv's cache, or PyPI), a server that
answers HTTP; and the ways it must fail or stop cleanly.

An integration test, not a unit test: it installs packages (from uv's cache when it has them,
else from PyPI, and npm's registry for the Express example)."""

from __future__ import annotations

import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from agent.tools import (
    Cancelled,
    DeployResult,
    Progress,
    ToolError,
    analyse_directory,
    deploy_local,
    stop_local,
)
from tests.support import sample_repos as samples
from tests.support.silent_server import silent_server

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class Recorder:
    def __init__(self, cancel_when: Callable[[Progress], bool] | None = None) -> None:
        self.seen: list[Progress] = []
        self._cancel_when = cancel_when
        self.cancel = False

    def __call__(self, progress: Progress) -> None:
        self.seen.append(progress)
        if self._cancel_when is not None and self._cancel_when(progress):
            self.cancel = True

    def should_cancel(self) -> bool:
        return self.cancel

    def assert_monotonic(self) -> None:
        percents = [p.percent for p in self.seen]
        assert percents == sorted(percents), percents

    @property
    def stages(self) -> list[str]:
        out: list[str] = []
        for p in self.seen:
            if not out or out[-1] != p.stage:
                out.append(p.stage)
        return out


@pytest.fixture
def deployed() -> Iterator[list[DeployResult]]:
    """Results to stop at teardown, whatever the test did."""
    results: list[DeployResult] = []
    yield results
    for result in results:
        if result.pid is not None:
            stop_local(result.pid)


def processes_under(path: Path) -> list[psutil.Process]:
    """Live processes started from, or running in, `path` (our children, grandchildren...)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(proc.cmdline())
            cwd = proc.cwd()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if str(path) in cmdline or cwd.startswith(str(path)):
            found.append(proc)
    return found


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def deploy(source: Path, state: Path, recorder: Recorder, **kwargs: object) -> DeployResult:
    analysis = analyse_directory(source)
    return deploy_local(
        source,
        analysis,
        state_dir=state,
        on_progress=recorder,
        should_cancel=recorder.should_cancel,
        progress_interval_s=0,
        **kwargs,  # type: ignore[arg-type]
    )


def test_flask_app_runs_and_answers(
    tmp_path: Path, deployed: list[DeployResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOYCHAT_TEST_SECRET", "agent-only")
    recorder = Recorder()
    source = samples.write_flask_app(tmp_path / "hello")
    result = deploy(source, tmp_path / "state", recorder, env={"GREETING": "Hi"})
    deployed.append(result)

    assert result.kind == "local" and result.url == f"http://127.0.0.1:{result.port}"
    assert get(result.url) == (200, "Hi from Flask!")
    recorder.assert_monotonic()
    assert recorder.stages == ["preparing", "installing", "starting", "health-check", "done"]
    assert recorder.seen[-1].percent == 100
    assert result.log_path is not None and "Booting worker" in Path(result.log_path).read_text()
    # Its own venv, under the state dir, on the Python the app asks for (.python-version says
    # 3.11, which pyenv has here); and none of the agent's environment.
    venv = tmp_path / "state" / "hello" / "runs" / str(result.deployment_id) / "venv"
    assert (venv / "bin" / "gunicorn").exists()
    assert "version_info = 3.11" in (venv / "pyvenv.cfg").read_text().replace(
        "version = ", "version_info = "
    )
    assert result.pid is not None
    environ = psutil.Process(result.pid).environ()
    assert environ["PORT"] == str(result.port) and environ["GREETING"] == "Hi"
    assert "DEPLOYCHAT_TEST_SECRET" not in environ

    assert {p.pid for p in processes_under(tmp_path)} >= {result.pid}  # master and worker
    assert stop_local(result.pid) is True
    assert not psutil.pid_exists(result.pid) or psutil.Process(result.pid).status() == "zombie"
    assert processes_under(tmp_path) == []
    assert stop_local(result.pid) is False


def test_static_site_and_redeploy_replaces_the_previous_run(
    tmp_path: Path, deployed: list[DeployResult]
) -> None:
    source = samples.write_static_site(tmp_path / "site")
    first = deploy(source, tmp_path / "state", Recorder())
    deployed.append(first)
    status, body = get(first.url + "/index.html")
    assert status == 200 and "Hello, static" in body

    second = deploy(source, tmp_path / "state", Recorder())
    deployed.append(second)
    assert first.pid is not None and not _running(first.pid)
    assert get(second.url)[0] == 200


def test_state_dir_inside_the_source_is_not_copied(
    tmp_path: Path, deployed: list[DeployResult]
) -> None:
    source = samples.write_static_site(tmp_path / "site")
    result = deploy(source, source / ".state", Recorder())
    deployed.append(result)
    assert get(result.url)[0] == 200
    run = source / ".state" / "site" / "runs" / str(result.deployment_id)
    assert (run / "app" / "index.html").exists() and not (run / "app" / ".state").exists()


@pytest.fixture
def silent_index() -> Iterator[str]:
    """A package index that accepts connections and never answers: installs hang on it."""
    with silent_server() as port:
        yield f"http://127.0.0.1:{port}/simple"


def test_cancel_mid_install_kills_everything(tmp_path: Path, silent_index: str) -> None:
    source = samples.write_flask_app(tmp_path / "hello")
    (source / "requirements.txt").write_text(f"--index-url {silent_index}\nFlask==3.1.3\n")

    def installing(progress: Progress) -> bool:
        # A tick of the dependency install: the installer is running (and hanging) now.
        return progress.message.startswith("installing dependencies (")

    recorder = Recorder(cancel_when=installing)
    started = time.monotonic()
    with pytest.raises(Cancelled):
        deploy(source, tmp_path / "state", recorder)
    assert time.monotonic() - started < 20
    assert processes_under(tmp_path) == []
    assert not (tmp_path / "state" / "hello" / "run.json").exists()  # nothing was started
    recorder.assert_monotonic()
    assert recorder.stages[-1] == "installing"


def test_requirements_that_do_not_install(tmp_path: Path) -> None:
    source = samples.write_flask_bad_requirements(tmp_path / "bad")
    with pytest.raises(ToolError) as raised:
        deploy(source, tmp_path / "state", Recorder())
    message = raised.value.message
    assert "Installing dependencies failed" in message
    assert "deploychat-no-such-package-xyz" in message  # from the install log's tail
    assert processes_under(tmp_path) == []


def test_app_that_crashes_on_start(tmp_path: Path) -> None:
    source = samples.write_flask_crashing(tmp_path / "crash")
    with pytest.raises(ToolError) as raised:
        deploy(source, tmp_path / "state", Recorder(), health_timeout_s=30)
    assert "exited" in raised.value.message
    assert "boom at import" in raised.value.message
    assert processes_under(tmp_path) == []


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm and the npm registry")
def test_express_example(tmp_path: Path, deployed: list[DeployResult]) -> None:
    recorder = Recorder()
    result = deploy(EXAMPLES / "hello-express", tmp_path / "state", recorder)
    deployed.append(result)
    assert get(result.url) == (200, "Hello from Express!\n")
    recorder.assert_monotonic()
    assert not (EXAMPLES / "hello-express" / "node_modules").exists()  # ran from a copy


def test_a_redeploy_that_fails_or_is_cancelled_leaves_the_old_one_running(
    tmp_path: Path, deployed: list[DeployResult]
) -> None:
    source = samples.write_static_site(tmp_path / "site")
    first = deploy(source, tmp_path / "state", Recorder())
    deployed.append(first)
    assert first.pid is not None

    # Cancelled once the new run is starting: the old one never stopped.
    starting = Recorder(cancel_when=lambda p: p.stage == "starting")
    with pytest.raises(Cancelled):
        deploy(source, tmp_path / "state", starting)
    assert _running(first.pid) and get(first.url)[0] == 200

    # A new version that answers 404 fails its health check: the old one still serves.
    # (Its health path is a page it does not have.)
    analysis = analyse_directory(source).model_copy(update={"health_path": "/missing.html"})
    failing = Recorder()
    with pytest.raises(ToolError, match="HTTP 404"):
        deploy_local(
            source,
            analysis,
            state_dir=tmp_path / "state",
            on_progress=failing,
            should_cancel=failing.should_cancel,
            progress_interval_s=0,
        )
    assert _running(first.pid) and get(first.url)[0] == 200
    assert len(list((tmp_path / "state" / "site" / "runs").iterdir())) == 1

    # A good one takes over, then the old one stops.
    second = deploy(source, tmp_path / "state", Recorder())
    deployed.append(second)
    assert get(second.url)[0] == 200 and not _running(first.pid)


def test_a_4xx_answer_fails_with_the_status_and_the_log(tmp_path: Path) -> None:
    source = samples.write_flask_app(tmp_path / "hello")
    app = (source / "app.py").read_text().replace('@app.get("/")', '@app.get("/home")')
    (source / "app.py").write_text(app)
    with pytest.raises(ToolError) as raised:
        deploy(source, tmp_path / "state", Recorder(), health_timeout_s=60)
    message = raised.value.message
    assert "HTTP 404" in message and "not a success" in message
    assert "Last lines of app.log" in message and "Booting worker" in message
    assert processes_under(tmp_path) == []


def test_django_collects_static_files_and_answers_on_its_hosts(
    tmp_path: Path, deployed: list[DeployResult]
) -> None:
    source = samples.write_django_whitenoise_app(tmp_path / "dj")
    recorder = Recorder()
    result = deploy(source, tmp_path / "state", recorder, health_timeout_s=90)
    deployed.append(result)
    # ALLOWED_HOSTS is [] in its settings: the overlay adds 127.0.0.1; WhiteNoise's manifest
    # exists because collectstatic ran.
    status, body = get(result.url)
    assert status == 200 and "hello django" in body
    assert get(result.url + "/static/site.css")[0] == 200
    assert any("collecting static files" in p.message for p in recorder.seen)


@pytest.mark.skipif(shutil.which("mvn") is None, reason="needs Java and Maven")
def test_plain_java_app_built_with_maven(tmp_path: Path, deployed: list[DeployResult]) -> None:
    source = samples.write_java_http_app(tmp_path / "jv")
    result = deploy(source, tmp_path / "state", Recorder(), health_timeout_s=60)
    deployed.append(result)
    assert get(result.url) == (200, "Hello from Java!")


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm and the npm registry")
def test_vite_spa_is_built_and_served_with_a_fallback(
    tmp_path: Path, deployed: list[DeployResult]
) -> None:
    source = samples.write_vite_spa(tmp_path / "spa")
    (source / "package-lock.json").unlink()  # resolved from the registry (npm install)
    package = (
        (source / "package.json").read_text().replace(',\n    "@vitejs/plugin-react": "^4.3.0"', "")
    )
    (source / "package.json").write_text(package)
    result = deploy(source, tmp_path / "state", Recorder(), install_timeout_s=600)
    deployed.append(result)
    status, body = get(result.url)
    # The built page (its script bundled into assets/), not the source index.html.
    assert status == 200 and "/assets/" in body and "/src/main.jsx" not in body
    assert get(result.url + "/some/client/route") == (status, body)
