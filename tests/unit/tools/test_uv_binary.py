"""Which uv a local deployment uses: one that runs. A pyenv shim named uv exits 127 when the
Python it picks (the global one, or the app's .python-version) has no uv, and CI has one."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.tools import local_steps


def script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    local_steps.uv_binary.cache_clear()
    yield
    local_steps.uv_binary.cache_clear()


def test_a_shim_that_fails_is_passed_over_for_the_uv_pyenv_knows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shims = tmp_path / "pyenv" / "shims"
    script(shims / "uv", 'echo "pyenv: uv: command not found" >&2; exit 127')
    real = script(tmp_path / "pyenv" / "versions" / "3.12.1" / "bin" / "uv", "echo uv 0.9.0")
    bin_dir = tmp_path / "bin"
    script(bin_dir / "pyenv", f'[ "$1 $2 $3" = "whence --path uv" ] && echo {real}')
    monkeypatch.setenv("PATH", f"{shims}:{bin_dir}:/usr/bin:/bin")
    assert local_steps.uv_binary() == str(real)


def test_a_uv_on_path_that_does_not_run_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script(tmp_path / "broken" / "uv", "exit 1")
    good = script(tmp_path / "good" / "uv", "echo uv 0.9.0")
    monkeypatch.setenv("PATH", f"{tmp_path / 'broken'}:{tmp_path / 'good'}:/usr/bin:/bin")
    assert local_steps.uv_binary() == str(good)


def test_no_uv_that_runs_means_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shims = tmp_path / "shims"
    script(shims / "uv", "exit 127")
    monkeypatch.setenv("PATH", f"{shims}:/usr/bin:/bin")
    assert local_steps.uv_binary() is None
    assert local_steps._installer() == "pip"
