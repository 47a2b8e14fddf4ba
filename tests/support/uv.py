"""uv as the Makefile found it, for the tests that replay what Cloud Build does with it."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess


def uv_command() -> list[str] | None:
    """`UV` (the Makefile exports it: uv on PATH, or `python3.12 -m uv`), else uv on PATH; None
    if neither runs."""
    configured = shlex.split(os.environ.get("UV", ""))
    found = shutil.which("uv")
    for argv in (configured, [found] if found else []):
        if not argv:
            continue
        try:
            ok = subprocess.run([*argv, "--version"], capture_output=True, timeout=30).returncode
        except (OSError, subprocess.TimeoutExpired):
            continue
        if ok == 0:
            return argv
    return None
