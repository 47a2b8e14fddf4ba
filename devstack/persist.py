"""`make dev`'s data across restarts: the Firestore and Auth emulators' contents, exported into
`.devstack/data/` (while running, and on stop) and imported when the stack starts again.

Exports go through the emulators' own HTTP export endpoints into a fresh folder, which then
replaces the previous one, so a stack killed mid-export still finds the last complete copy.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path

from .stack import Stack


def _post(url: str, body: dict[str, str], timeout: float) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=timeout).close()


def _replace(fresh: Path, final: Path) -> None:
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    fresh.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def save(stack: Stack, data_dir: Path, timeout: float = 5.0) -> None:
    """Export both emulators' data into `data_dir` (firestore/ and auth/)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    stamp = f"{time.time_ns()}"
    if stack.firestore is not None and stack.firestore.process.alive:
        fresh = data_dir / f"firestore.new-{stamp}"
        fresh.mkdir()
        project = stack.config.project
        try:
            _post(
                f"http://{stack.firestore.host}/emulator/v1/projects/{project}:export",
                {
                    "database": f"projects/{project}/databases/(default)",
                    "export_directory": str(fresh.resolve()),
                },
                timeout,
            )
            _replace(fresh, data_dir / "firestore")
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
    if stack.auth is not None and stack.auth.process.alive:
        fresh = data_dir / f"auth.new-{stamp}"
        fresh.mkdir()
        try:
            # The emulator hub's export (what `firebase emulators:export` calls).
            _post(
                f"http://127.0.0.1:{stack.auth.hub_port}/_admin/export",
                {"path": str(fresh.resolve()), "initiatedBy": "devstack"},
                timeout,
            )
            _replace(fresh, data_dir / "auth")
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
