"""scripts/stage_function.py: what the function's source holds, and what it never holds."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.uv import uv_command

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "stage_function.py"

pytestmark = pytest.mark.skipif(uv_command() is None, reason="needs uv (uv export)")


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stage_function", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stage") / "function"
    result = run("--out", out, "--zip", out.with_suffix(".zip"))
    assert result.returncode == 0, result.stderr
    return out


def test_holds_entry_point_agent_shared_package_and_requirements(staged: Path) -> None:
    top = {p.name for p in staged.iterdir()} - {".staged-function"}
    assert top == {"main.py", "agent", "deploychat", "requirements.txt"}
    assert (staged / "main.py").read_text() == (ROOT / "services/agent_fn/main.py").read_text()
    for package, source in (("agent", "services/agent_fn/agent"), ("deploychat", "deploychat")):
        expected = {
            p.relative_to(ROOT / source)
            for p in (ROOT / source).rglob("*.py")
            if "__pycache__" not in p.parts
        }
        got = {p.relative_to(staged / package) for p in (staged / package).rglob("*.py")}
        assert got == expected, package


def test_leaves_out_dev_things(staged: Path) -> None:
    names = {p.relative_to(staged).as_posix() for p in staged.rglob("*")}
    for never in ("devstack", "tests", "services", "infra", "scripts", "pyproject.toml"):
        assert not any(n == never or n.startswith(never + "/") for n in names), never
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_requirements_are_exported_from_the_lock(staged: Path) -> None:
    text = (staged / "requirements.txt").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", text, re.M))
    for needed in ("functions-framework", "google-genai", "google-cloud-firestore", "pydantic"):
        assert needed in pins, needed
    for dev_only in ("pytest", "ruff", "mypy", "playwright", "flask-sock", "gevent"):
        assert dev_only not in pins, dev_only
    assert "--hash=sha256:" in text  # pip checks every download
    assert "deploychat" not in pins  # the project itself is copied, not installed
    # The same versions as the lock file.
    lock = (ROOT / "uv.lock").read_text()
    for name in ("functions-framework", "google-genai"):
        assert f'name = "{name}"\nversion = "{pins[name]}"' in lock


def test_archive_is_the_directory_and_deterministic(staged: Path, tmp_path: Path) -> None:
    archive = staged.with_suffix(".zip")
    with zipfile.ZipFile(archive) as zf:
        names = sorted(zf.namelist())
        assert names == sorted(
            p.relative_to(staged).as_posix()
            for p in staged.rglob("*")
            if p.is_file() and p.name != ".staged-function"
        )
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())
        assert zf.read("main.py") == (staged / "main.py").read_bytes()
    again = tmp_path / "again"
    assert run("--out", again, "--zip", tmp_path / "again.zip").returncode == 0
    assert (tmp_path / "again.zip").read_bytes() == archive.read_bytes()


def test_restaging_replaces_the_previous_staging(tmp_path: Path) -> None:
    out = tmp_path / "function"
    assert run("--out", out).returncode == 0
    (out / "leftover.py").write_text("x = 1\n")
    assert run("--out", out).returncode == 0
    assert not (out / "leftover.py").exists()


def test_refuses_to_clobber_other_directories(tmp_path: Path) -> None:
    module = load_script()
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me\n")
    result = run("--out", precious)
    assert result.returncode == 1
    assert "not made by this script" in result.stderr
    assert (precious / "notes.txt").exists()
    for bad in (ROOT, ROOT / "deploychat", ROOT / "services" / "agent_fn" / "build", ROOT.parent):
        with pytest.raises(module.StageError):
            module.prepare_out(bad, ROOT)
