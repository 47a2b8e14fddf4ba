"""uv as the Makefile found it, for the tests that replay what Cloud Build does with it."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "stage_function.py"


def _stage_function() -> ModuleType:
    # scripts/ is not a package (Cloud Build runs the file alone): load it by path.
    spec = importlib.util.spec_from_file_location("stage_function_for_uv", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def uv_command() -> list[str] | None:
    """The staging script's own `uv_command()` (`UV`, else uv on PATH); None if it does not run."""
    stage = _stage_function()
    try:
        argv: list[str] = stage.uv_command()
        ok = subprocess.run([*argv, "--version"], capture_output=True, timeout=30).returncode
    except (stage.StageError, OSError, subprocess.TimeoutExpired):
        return None
    return argv if ok == 0 else None
