"""Packs the app's source for Cloud Build: a .tgz of the tree with our Dockerfile added.

Our Dockerfile and .dockerignore, when there are any (a generated build plan), go in at the
root, in place of any the repository has (its files on disk are not touched); without them the
repository's own are kept. What never belongs in a build context (VCS data, installed
dependencies, virtual environments) is left out here already, so the upload stays small.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import time
from pathlib import Path
from typing import Protocol

from .errors import ToolError

MAX_ARCHIVE_INPUT_BYTES = 500_000_000
_SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".next", ".terraform"}
)


class AddedFiles(Protocol):
    """What goes into the archive's root besides the tree (GeneratedFiles, BuildPlan)."""

    @property
    def dockerfile(self) -> str | None: ...

    @property
    def dockerignore(self) -> str | None: ...


def make_source_archive(
    source_dir: Path,
    files: AddedFiles,
    dest: Path,
    *,
    max_bytes: int = MAX_ARCHIVE_INPUT_BYTES,
) -> Path:
    root = source_dir.resolve()
    added = {"Dockerfile": files.dockerfile, ".dockerignore": files.dockerignore}
    replaced = {name for name, text in added.items() if text is not None}
    total = 0
    with tarfile.open(dest, "w:gz") as tar:
        for directory, dirnames, filenames in os.walk(root):
            # Pruned in place so os.walk does not descend; symlinked dirs are not followed.
            dirnames[:] = sorted(
                d
                for d in dirnames
                if d not in _SKIP_DIRS
                and not os.path.exists(os.path.join(directory, d, "pyvenv.cfg"))
            )
            for name in dirnames:
                path = Path(directory, name)
                if path.is_symlink():
                    # Kept as a link, as Docker would see it; os.walk does not follow it.
                    tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False)
            for name in sorted(filenames):
                path = Path(directory, name)
                rel = path.relative_to(root).as_posix()
                if rel in replaced:
                    continue
                try:
                    info = path.lstat()
                except OSError:
                    continue
                if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
                    continue
                total += info.st_size
                if total > max_bytes:
                    raise ToolError(
                        f"The source is larger than {max_bytes // 1_000_000} MB; that is too "
                        "much to upload for a build. Add a .dockerignore or clean the tree."
                    )
                tar.add(path, arcname=rel, recursive=False)
        for name, text in added.items():
            if text is not None:
                _add_text(tar, name, text)
    return dest


def _add_text(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))
