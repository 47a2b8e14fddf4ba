"""Go apps: a `main` package serving HTTP with net/http or a common router."""

from __future__ import annotations

import re

from .analysis_model import Framework, Tests
from .detect_common import (
    MAX_SCANNED_SOURCES,
    Findings,
    file_evidence,
    first_match,
    pick_health_path,
    scan_env_vars,
    scan_port,
)
from .repo_files import RepoFiles

_GO_DIRECTIVE = re.compile(r"^go\s+(\d+)\.(\d+)")
_PACKAGE_MAIN = re.compile(r"^package\s+main\b")
_FUNC_MAIN = re.compile(r"^func\s+main\s*\(\s*\)")
# Import path -> framework; net/http last, since the routers import it too.
_FRAMEWORK_IMPORTS: tuple[tuple[str, Framework], ...] = (
    ("github.com/gin-gonic/gin", "gin"),
    ("github.com/labstack/echo", "echo"),
    ("github.com/go-chi/chi", "chi"),
    ("github.com/gofiber/fiber", "fiber"),
    ("net/http", "go-net-http"),
)
_READS_PORT = re.compile(r"os\.(?:Getenv|LookupEnv)\(\s*\"PORT\"\s*\)")
_PORT_PATTERNS = (
    re.compile(r"(?:Listen\w*|\.Run|\.Start)\(\s*\"(?:[\w.]*)?:(\d{2,5})\""),
    re.compile(
        r"\b(?:port|addr|Addr|PORT)\s*(?::=|=|:)\s*\"(?:[\w.]*:)?(\d{2,5})\"", re.IGNORECASE
    ),
)
# A path in a string literal: "templates/*.html", "./static", http.Dir("public").
_PATH_LITERAL = re.compile(r'"(?:\./)?([A-Za-z_][\w.-]*)(?:/[^"]*)?"')
_GO_VERSIONS = [(1, 22), (1, 23), (1, 24), (1, 25)]
_ENV_PATTERNS = (re.compile(r"os\.(?:Getenv|LookupEnv)\(\s*\"([A-Za-z_][A-Za-z0-9_]*)\"\s*\)"),)


def is_go(repo: RepoFiles) -> bool:
    return repo.exists("go.mod")


def detect_go(repo: RepoFiles) -> Findings:
    found = Findings(language="go", package_manager="go", manifest="go.mod")
    found.lock_file = repo.first("go.sum")
    found.add("language", file_evidence("go.mod"))
    found.add("package_manager", file_evidence("go.mod"))
    version = first_match(repo, ["go.mod"], _GO_DIRECTIVE)
    if version:
        found.language_version = f"{version[2].group(1)}.{version[2].group(2)}"
        found.add("language_version", repo.evidence("go.mod", version[1]))
        if (int(version[2].group(1)), int(version[2].group(2))) < _GO_VERSIONS[0]:
            found.warnings.append(
                f"go.mod says go {found.language_version}; it is built with Go "
                f"{_GO_VERSIONS[0][0]}.{_GO_VERSIONS[0][1]} or newer, which builds older modules."
            )
    sources = [
        f for f in repo.with_suffix(".go", limit=MAX_SCANNED_SOURCES) if not f.endswith("_test.go")
    ]
    _main_package(repo, found, sources)
    if found.entry_point is not None:
        _framework(repo, found, sources)
        if found.framework is not None:
            _port(repo, found, sources)
            _assets(repo, found, sources)
            pick_health_path(repo, found, sources)
    found.env_vars = scan_env_vars(repo, sources, _ENV_PATTERNS)
    tests = repo.with_suffix("_test.go", limit=8)
    if tests:
        found.tests = Tests(paths=tests, command="go test ./...")
        found.add("tests", file_evidence(tests[0]))
    return found


def _main_package(repo: RepoFiles, found: Findings, sources: list[str]) -> None:
    mains: list[tuple[str, int]] = []
    for rel in sources:
        if first_match(repo, [rel], _PACKAGE_MAIN) is None:
            continue
        hit = first_match(repo, [rel], _FUNC_MAIN)
        if hit:
            mains.append((rel, hit[1]))
    if not mains:
        return
    # The root package first, then cmd/<name>, then anything else; shallowest wins.
    mains.sort(key=lambda m: (m[0].count("/"), not m[0].startswith("cmd/"), m[0]))
    rel, line = mains[0]
    found.entry_point = rel
    directory = rel.rpartition("/")[0]
    found.app_target = f"./{directory}" if directory else "."
    found.server = "go"
    found.add("entry_point", repo.evidence(rel, line))
    others = sorted({m[0].rpartition("/")[0] or "." for m in mains[1:]} - {directory or "."})
    if others:
        found.warnings.append(
            f"Several main packages ({', '.join(others[:4])}); building {found.app_target}."
        )


def _framework(repo: RepoFiles, found: Findings, sources: list[str]) -> None:
    for path, framework in _FRAMEWORK_IMPORTS:
        pattern = re.compile(r'^\s*(?:import\s+)?(?:\w+\s+)?"' + re.escape(path) + r'(?:/v\d+)?"')
        hit = first_match(repo, sources, pattern)
        if hit:
            found.framework = framework
            found.add("framework", repo.evidence(hit[0], hit[1]))
            return


def _port(repo: RepoFiles, found: Findings, sources: list[str]) -> None:
    scan_port(repo, found, sources, _READS_PORT, _PORT_PATTERNS)


def _assets(repo: RepoFiles, found: Findings, sources: list[str]) -> None:
    """Folders the code names that hold files other than Go: read at run time, so the image
    needs them beside the binary (embedded ones too; copying them is harmless)."""
    folders: dict[str, set[str]] = {}
    for rel in repo.files:
        if "/" in rel and not rel.endswith(".go"):
            folders.setdefault(rel.split("/", 1)[0], set()).add(rel)
    for rel in sources:
        for line, _ in repo.grep(rel, _PATH_LITERAL):
            for hit in _PATH_LITERAL.finditer(repo.evidence(rel, line).snippet):
                name = hit.group(1)
                if name in folders and name not in found.assets and len(found.assets) < 8:
                    found.assets.append(name)
                    found.add("assets", repo.evidence(rel, line))
