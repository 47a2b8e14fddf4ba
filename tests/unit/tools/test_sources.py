"""Where sources may come from (issue 10, item 6): local folders only inside the workspace, and
only when turned on; file:// is not a git URL; git and every tool process get a minimal
environment; a clone that fails is one short, permanent error."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent.settings import AgentSettings
from agent.tools import ToolError, analyse_repository
from agent.tools.child_env import minimal_env
from agent.tools.source import resolve_local
from deploychat.errors import PermanentError, TransientError
from tests.support import sample_repos as samples


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    samples.write_flask_app(root / "app")
    samples.write_static_site(tmp_path / "outside")
    return root


def analyse(source: str, root: Path | None, tmp_path: Path) -> str:
    return analyse_repository(source, workdir=tmp_path / "work", local_root=root).framework


def test_local_folders_inside_the_workspace(workspace: Path, tmp_path: Path) -> None:
    assert analyse("app", workspace, tmp_path) == "flask"
    assert analyse("./app/", workspace, tmp_path) == "flask"
    assert analyse(str(workspace / "app"), workspace, tmp_path) == "flask"
    assert analyse("app/../app", workspace, tmp_path) == "flask"  # still inside


@pytest.mark.parametrize("source", ["../outside", "app/../../outside", "~/", "~root", "/etc"])
def test_paths_out_of_the_workspace_are_refused(
    workspace: Path, tmp_path: Path, source: str
) -> None:
    with pytest.raises(ToolError, match="outside the workspace") as raised:
        analyse(source, workspace, tmp_path)
    assert isinstance(raised.value, PermanentError) and not isinstance(raised.value, TransientError)


def test_a_symlink_out_of_the_workspace_is_refused(workspace: Path, tmp_path: Path) -> None:
    (workspace / "escape").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(ToolError, match="outside the workspace"):
        analyse("escape", workspace, tmp_path)
    with pytest.raises(ToolError, match="outside the workspace"):
        resolve_local(str(workspace / "escape"), workspace)


def test_local_folders_are_off_unless_configured(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ToolError, match="local folders are turned off"):
        analyse(str(workspace / "app"), None, tmp_path)
    for name in ("DEPLOYCHAT_LOCAL_SOURCES", "DEPLOYCHAT_LOCAL_DEPLOY"):
        monkeypatch.delenv(name, raising=False)
    settings = AgentSettings()
    assert settings.local_sources is False and settings.local_deploy is False


@pytest.mark.parametrize(
    "source", ["file:///etc", "file://localhost/srv/repo.git", "FILE:///tmp/x", "file:relative"]
)
def test_file_urls_are_not_git_urls(workspace: Path, tmp_path: Path, source: str) -> None:
    with pytest.raises(ToolError, match="not a git URL I can clone"):
        analyse(source, workspace, tmp_path)


def test_git_runs_without_our_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A `git` first on PATH that records its environment and fails like a missing repository.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "git-env.txt"
    fake = bin_dir / "git"
    fake.write_text(
        f"#!/bin/sh\nenv > {record}\necho \"fatal: repository 'x' not found\" >&2\nexit 128\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for name, value in {
        "GEMINI_API_KEY": "gemini-secret",
        "GOOGLE_API_KEY": "google-secret",
        "DEPLOYCHAT_GEMINI_API_KEY": "dc-secret",
        "GOOGLE_APPLICATION_CREDENTIALS": "/keys/sa.json",
        "UV_INDEX_TOKEN": "uv-secret",
        "GITHUB_TOKEN": "gh-secret",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ToolError) as raised:
        analyse_repository("https://example.com/acme/x.git", workdir=tmp_path / "work")
    env = record.read_text()
    for secret in ("gemini-secret", "google-secret", "dc-secret", "sa.json", "uv-secret", "gh"):
        assert secret not in env
    assert "GIT_TERMINAL_PROMPT=0" in env and "PATH=" in env
    # One short line that says what went wrong: no retry, no traceback, no log dump.
    assert raised.value.message == (
        "Could not clone https://example.com/acme/x.git: repository 'x' not found. Check the "
        "URL, and that the repository is public (or reachable from here)."
    )


def test_every_tool_process_gets_a_minimal_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "s")
    monkeypatch.setenv("PIP_INDEX_URL", "http://mirror/simple")
    monkeypatch.setenv("PIP_PASSWORD", "s")
    monkeypatch.setenv("DEPLOYCHAT_PROJECT", "p")
    env = minimal_env({"PORT": "1"})
    assert env["PIP_INDEX_URL"] == "http://mirror/simple" and env["PORT"] == "1"
    assert not {"GEMINI_API_KEY", "PIP_PASSWORD", "DEPLOYCHAT_PROJECT"} & set(env)
