"""Reads a repository that may be hostile: bounded, never outside the tree, never executing it.

Everything the analysis knows about a repository comes through here, so the limits live in one
place: how deep and how many files are listed, how big a file may be read, how much is read in
all. Directories that hold installed or generated code (dependencies, virtual environments,
build output) are skipped: they are not the app, and they are where a repository could hide
enough files to slow the analysis down.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .analysis_model import Evidence

IGNORED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        ".venv",
        "venv",
        "env",
        ".env",
        "__pycache__",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "site-packages",
        ".next",
        ".nuxt",
        "dist",
        "build",
        "coverage",
        ".idea",
        ".vscode",
        "vendor",
        "bower_components",
        ".terraform",
    }
)

_SNIPPET_CHARS = 120


@dataclass(frozen=True)
class Limits:
    max_depth: int = 10  # Java keeps its code six folders down
    max_files: int = 5000
    max_file_bytes: int = 512_000
    max_total_read_bytes: int = 16_000_000


class RepoFiles:
    """The files of one repository, listed once, read lazily and cached."""

    def __init__(self, root: Path, limits: Limits | None = None) -> None:
        self.root = root.resolve()
        self.limits = limits or Limits()
        self._read_budget = self.limits.max_total_read_bytes
        self._cache: dict[str, str | None] = {}
        self.truncated = False
        self.files: list[str] = self._list()
        self._set = frozenset(self.files)

    def _list(self) -> list[str]:
        found: list[str] = []
        # Breadth first, so the files that matter most (near the root) are kept when capped.
        queue: list[tuple[Path, int]] = [(self.root, 0)]
        while queue:
            directory, depth = queue.pop(0)
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                try:
                    if entry.is_symlink():
                        # A link is followed only if it stays inside the tree, and only to files:
                        # links to directories could loop or reach anywhere.
                        target = Path(os.path.realpath(entry.path))
                        if not target.is_relative_to(self.root) or not target.is_file():
                            continue
                        mode = os.stat(target).st_mode
                    else:
                        mode = entry.stat(follow_symlinks=False).st_mode
                except OSError:
                    continue
                rel = Path(entry.path).relative_to(self.root).as_posix()
                if stat.S_ISDIR(mode):
                    if depth + 1 < self.limits.max_depth and not self._ignored_dir(entry):
                        queue.append((Path(entry.path), depth + 1))
                elif stat.S_ISREG(mode):  # never a FIFO or device: opening one could hang
                    if len(found) >= self.limits.max_files:
                        self.truncated = True
                        return found
                    found.append(rel)
        return found

    @staticmethod
    def _ignored_dir(entry: os.DirEntry[str]) -> bool:
        if entry.name in IGNORED_DIRS:
            return True
        # A virtual environment under any name.
        return os.path.exists(os.path.join(entry.path, "pyvenv.cfg"))

    def exists(self, rel: str) -> bool:
        return rel in self._set

    def first(self, *rels: str) -> str | None:
        return next((r for r in rels if r in self._set), None)

    def with_suffix(self, *suffixes: str, limit: int = 200) -> list[str]:
        """Files ending in one of `suffixes`, shallowest first, at most `limit`."""
        picked = [f for f in self.files if f.endswith(suffixes)]
        picked.sort(key=lambda f: (f.count("/"), f))
        return picked[:limit]

    def dirs(self) -> set[str]:
        out: set[str] = set()
        for f in self.files:
            parts = f.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                out.add("/".join(parts[:i]))
        return out

    def read(self, rel: str) -> str | None:
        """The text of a listed file, or None if it is too big, binary or over the budget."""
        if rel in self._cache:
            return self._cache[rel]
        text: str | None = None
        if rel in self._set:
            text = self._read(rel)
        self._cache[rel] = text
        return text

    def _read(self, rel: str) -> str | None:
        path = Path(os.path.realpath(self.root / rel))
        if not path.is_relative_to(self.root):
            return None
        try:
            # O_NONBLOCK: if the file was swapped for a FIFO since it was listed, open returns.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return None
            cap = min(self.limits.max_file_bytes, self._read_budget)
            data = fh.read(cap + 1)
        if len(data) > cap:
            return None
        self._read_budget -= len(data)
        if b"\0" in data[:8192]:
            return None
        return data.decode("utf-8", errors="replace")

    def grep(self, rel: str, pattern: re.Pattern[str]) -> Iterator[tuple[int, re.Match[str]]]:
        """(line number, match) for each line of `rel` that matches, first match per line."""
        text = self.read(rel)
        if text is None:
            return
        for number, line in enumerate(text.splitlines(), start=1):
            match = pattern.search(line)
            if match:
                yield number, match

    def evidence(self, rel: str, line: int) -> Evidence:
        text = self.read(rel) or ""
        lines = text.splitlines()
        snippet = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        return Evidence(file=rel, line=line, snippet=shorten(snippet))


def shorten(text: str, limit: int = _SNIPPET_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
