"""Stage the agent function's source: what Cloud Functions builds, and nothing else.

    .venv/bin/python scripts/stage_function.py --out build/function [--zip build/function.zip]

The staged directory holds:

    main.py            services/agent_fn/main.py (the entry point, `handle_turn`)
    agent/             services/agent_fn/agent/
    deploychat/        the shared package, whole
    requirements.txt   exported from uv.lock (the `agent` extra, with hashes), never hand-written

Not devstack/, not tests, not the edge. The archive (--zip) is deterministic: the same source
gives the same bytes, so its checksum names it in the bucket and an unchanged function is not
redeployed (infra/modules/agent_function).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTION_DIR = ROOT / "services" / "agent_fn"
MARKER = ".staged-function"

# (source relative to the repository root, destination relative to the staged directory)
COPIES: tuple[tuple[str, str], ...] = (
    ("services/agent_fn/main.py", "main.py"),
    ("services/agent_fn/agent", "agent"),
    ("deploychat", "deploychat"),
)
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".mypy_cache", ".pytest_cache")
EXPORT_ARGS: tuple[str, ...] = (
    "export",
    "--frozen",
    "--no-dev",
    "--extra",
    "agent",
    "--no-emit-project",
    "--no-header",
)
# 1980-01-01, the earliest time a zip entry can hold.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class StageError(Exception):
    """The source cannot be staged; the message says why."""


def uv_command() -> list[str]:
    """uv as the Makefile found it (`UV`: on PATH, or `python3.12 -m uv`), else from PATH."""
    configured = os.environ.get("UV", "").strip()
    if configured:
        return shlex.split(configured)
    found = shutil.which("uv")
    if found is None:
        raise StageError("uv is not on PATH; it exports requirements.txt from uv.lock")
    return [found]


def export_requirements(root: Path, dest: Path) -> None:
    """Write the function's requirements, pinned with hashes, from the lock file."""
    argv = [*uv_command(), *EXPORT_ARGS, "--output-file", str(dest)]
    result = subprocess.run(argv, cwd=root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StageError(f"uv export failed: {result.stderr.strip()}")


def prepare_out(out: Path, root: Path) -> None:
    """Empty `out` for staging; refuse to touch a directory that is not a previous staging."""
    out = out.resolve()
    if out == root or root.is_relative_to(out) or out.is_relative_to(root / "services"):
        raise StageError(f"refusing to stage into {out}")
    for src, _ in COPIES:
        if out.is_relative_to(root / src) or out == root / src:
            raise StageError(f"refusing to stage into {out}")
    if out.exists():
        if not out.is_dir():
            raise StageError(f"{out} exists and is not a directory")
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise StageError(f"{out} is not empty and was not made by this script")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by scripts/stage_function.py; emptied on every run\n")


def stage(out: Path, root: Path = ROOT) -> list[Path]:
    """Stage the function into `out`; return the staged files, relative and sorted."""
    root = root.resolve()
    prepare_out(out, root)
    for src, dest in COPIES:
        source = root / src
        target = out / dest
        if source.is_dir():
            shutil.copytree(source, target, ignore=IGNORED)
        elif source.is_file():
            shutil.copy2(source, target)
        else:
            raise StageError(f"{source} is missing")
    export_requirements(root, out / "requirements.txt")
    return sorted(staged_files(out))


def staged_files(out: Path) -> Iterator[Path]:
    for path in out.rglob("*"):
        if path.is_file() and path.name != MARKER:
            yield path.relative_to(out)


def write_zip(out: Path, archive: Path) -> None:
    """Zip the staged directory: sorted entries, fixed times and modes, so equal input gives
    equal bytes."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel in sorted(staged_files(out), key=lambda p: p.as_posix()):
            info = zipfile.ZipInfo(rel.as_posix(), date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, so the mode above is honoured
            zf.writestr(info, (out / rel).read_bytes())
    os.replace(tmp, archive)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stage_function.py",
        description="Stage the agent function's source (and optionally its archive).",
    )
    parser.add_argument("--out", type=Path, required=True, help="directory to stage into")
    parser.add_argument("--zip", type=Path, default=None, help="also write this source archive")
    args = parser.parse_args(argv)
    try:
        files = stage(args.out)
        if args.zip is not None:
            write_zip(args.out.resolve(), args.zip.resolve())
    except StageError as exc:
        print(f"stage_function: {exc}", file=sys.stderr)
        return 1
    print(f"staged {len(files)} files into {args.out}", file=sys.stderr)
    if args.zip is not None:
        print(f"wrote {args.zip}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
