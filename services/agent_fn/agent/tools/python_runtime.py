"""Which Python interpreter a local run uses: one that matches the app's version when this
machine has it (pyenv's, found without downloading anything), else the nearest, said so."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

_VERSION_DIR = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: tuple[int, int]
    note: str | None  # set when it is not the version the app asks for


def installed() -> dict[tuple[int, int], str]:
    """major.minor -> an interpreter's path: pyenv's versions, and the one running us."""
    found: dict[tuple[int, int], str] = {}
    roots = [Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"]
    for root in roots:
        try:
            entries = sorted(root.iterdir(), key=lambda p: p.name)
        except OSError:
            continue
        for entry in entries:
            match = _VERSION_DIR.match(entry.name)
            binary = entry / "bin" / f"python{match.group(1)}.{match.group(2)}" if match else None
            if match and binary is not None and binary.is_file() and os.access(binary, os.X_OK):
                found[(int(match.group(1)), int(match.group(2)))] = str(binary)
    found.setdefault(sys.version_info[:2], sys.executable)
    return found


def pick_interpreter(wanted: str | None) -> Interpreter:
    """The interpreter for an app that asks for `wanted` ("3.12"; None: no preference)."""
    available = installed()
    ours = sys.version_info[:2]
    if wanted is None:
        return Interpreter(available[ours], ours, None)
    try:
        major, minor = (int(x) for x in wanted.split(".")[:2])
    except ValueError:
        return Interpreter(available[ours], ours, None)
    if (major, minor) in available:
        return Interpreter(available[(major, minor)], (major, minor), None)
    # The nearest newer one runs most code written for an older one; else the newest older.
    newer = sorted(v for v in available if v > (major, minor) and v[0] == major)
    older = sorted((v for v in available if v < (major, minor) and v[0] == major), reverse=True)
    pick = (newer or older or [ours])[0]
    note = (
        f"Python {wanted} is not installed on this machine; using Python {pick[0]}.{pick[1]}, "
        "the nearest there is."
    )
    return Interpreter(available[pick], pick, note)
