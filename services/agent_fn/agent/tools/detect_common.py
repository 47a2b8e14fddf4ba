"""What every stack's detector shares: the findings being assembled, and the checks that do not
depend on the language (Dockerfile, Procfile, environment variables, version picking)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .analysis_model import (
    MAX_EVIDENCE_PER_FIELD,
    EnvVar,
    Evidence,
    EvidenceField,
    Framework,
    Language,
    PackageManager,
    RepoDockerfile,
    Server,
    Tests,
)
from .repo_files import RepoFiles

MAX_ENV_VARS = 30
MAX_EVIDENCE_PER_ENV_VAR = 2
MAX_SCANNED_SOURCES = 300


@dataclass
class Findings:
    """One stack's answer, filled in piece by piece; `analysis.py` turns it into an Analysis."""

    language: Language
    framework: Framework | None = None
    language_version: str | None = None
    package_manager: PackageManager = "none"
    manifest: str | None = None
    lock_file: str | None = None
    entry_point: str | None = None
    app_target: str | None = None
    server: Server | None = None
    start_command: str | None = None
    extra_packages: list[str] = field(default_factory=list)
    build_script: bool = False
    port: int | None = None
    default_port: int | None = None  # the framework's, when the code names none
    reads_port_env: bool = False
    env_vars: list[EnvVar] = field(default_factory=list)
    tests: Tests = field(default_factory=Tests)
    warnings: list[str] = field(default_factory=list)
    evidence: dict[EvidenceField, list[Evidence]] = field(default_factory=dict)
    factory: bool = False
    django_settings: str | None = None
    collectstatic: bool = False
    build_required_env: list[str] = field(default_factory=list)
    runtime_env: dict[str, str] = field(default_factory=dict)
    build_env: dict[str, str] = field(default_factory=dict)
    build_tool: str | None = None
    build_output: str | None = None
    assets: list[str] = field(default_factory=list)
    next_standalone: bool = False
    local_run: str | None = None  # why it cannot run here
    health_path: str = "/"

    def add(self, name: EvidenceField, *items: Evidence) -> None:
        bucket = self.evidence.setdefault(name, [])
        for item in items:
            if item not in bucket and len(bucket) < MAX_EVIDENCE_PER_FIELD:
                bucket.append(item)


def file_evidence(rel: str, snippet: str = "") -> Evidence:
    return Evidence(file=rel, line=0, snippet=snippet or rel)


def first_match(
    repo: RepoFiles, files: Iterable[str], pattern: re.Pattern[str]
) -> tuple[str, int, re.Match[str]] | None:
    for rel in files:
        for line, match in repo.grep(rel, pattern):
            return rel, line, match
    return None


def all_matches(
    repo: RepoFiles, files: Iterable[str], pattern: re.Pattern[str]
) -> list[tuple[str, int, re.Match[str]]]:
    return [(rel, line, m) for rel in files for line, m in repo.grep(rel, pattern)]


def scan_env_vars(
    repo: RepoFiles, files: Iterable[str], patterns: Iterable[re.Pattern[str]]
) -> list[EnvVar]:
    """Names read from the environment, in the order first seen, with where they are read."""
    found: dict[str, list[Evidence]] = {}
    compiled = list(patterns)
    for rel in files:
        text = repo.read(rel)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for pattern in compiled:
                for match in pattern.finditer(line):
                    name = match.group(1)
                    if name not in found and len(found) >= MAX_ENV_VARS:
                        continue
                    bucket = found.setdefault(name, [])
                    if len(bucket) < MAX_EVIDENCE_PER_ENV_VAR:
                        bucket.append(repo.evidence(rel, number))
    return [EnvVar(name=n, evidence=ev) for n, ev in found.items()]


_EXPOSE = re.compile(r"^\s*EXPOSE\s+(\d{2,5})", re.IGNORECASE)
_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", re.IGNORECASE)
_CMD = re.compile(r"^\s*(CMD|ENTRYPOINT)\s+(.+?)\s*$", re.IGNORECASE)
_PORT_REF = re.compile(r"\$\{?PORT\b")
_FIXED_PORT = re.compile(r"(?:--port[= ]|--bind[= ]\S*:|-p\s+|:)(\d{2,5})\b")
_PROC_WEB = re.compile(r"^\s*web\s*:\s*(.+?)\s*$")
DOCKERFILE_NAMES = ("Dockerfile", "dockerfile", "Containerfile")


@dataclass(frozen=True)
class DeployFiles:
    dockerfile: str | None
    expose: tuple[int, Evidence] | None
    procfile: str | None
    procfile_web: tuple[str, Evidence] | None
    repo_dockerfile: RepoDockerfile | None = None
    dockerfile_evidence: tuple[Evidence, ...] = ()


def deploy_files(repo: RepoFiles) -> DeployFiles:
    dockerfile = repo.first(*DOCKERFILE_NAMES)
    expose = None
    info: RepoDockerfile | None = None
    evidence: list[Evidence] = []
    if dockerfile:
        hit = first_match(repo, [dockerfile], _EXPOSE)
        if hit:
            expose = (int(hit[2].group(1)), repo.evidence(hit[0], hit[1]))
        info, evidence = _read_dockerfile(repo, dockerfile, expose)
    procfile = repo.first("Procfile")
    web = None
    if procfile:
        hit = first_match(repo, [procfile], _PROC_WEB)
        if hit:
            web = (hit[2].group(1), repo.evidence(hit[0], hit[1]))
    return DeployFiles(dockerfile, expose, procfile, web, info, tuple(evidence))


def _read_dockerfile(
    repo: RepoFiles, rel: str, expose: tuple[int, Evidence] | None
) -> tuple[RepoDockerfile, list[Evidence]]:
    """Its base images, EXPOSE, last CMD/ENTRYPOINT, and whether the port comes from $PORT."""
    bases = [m.group(1) for _, m in repo.grep(rel, _FROM)]
    evidence = [file_evidence(rel)]
    commands = list(repo.grep(rel, _CMD))
    cmd = None
    if commands:
        line, match = commands[-1]
        cmd = match.group(2)
        evidence.append(repo.evidence(rel, line))
    port_refs = list(repo.grep(rel, _PORT_REF))
    honours: bool | None
    if port_refs:
        honours = True
        evidence.append(repo.evidence(rel, port_refs[0][0]))
    elif expose is not None or (cmd is not None and _FIXED_PORT.search(cmd)):
        honours = False  # a port is written down and nothing reads PORT
    else:
        honours = None
    if expose is not None:
        evidence.append(expose[1])
    return (
        RepoDockerfile(
            path=rel,
            base_images=bases[:4],
            expose=expose[0] if expose else None,
            cmd=cmd,
            honours_port=honours,
        ),
        evidence,
    )


def supported(
    version: str | None,
    candidates: list[Version],
    *,
    what: str,
    major_only: bool = False,
) -> tuple[str | None, str | None]:
    """`version` moved to the nearest one that has a maintained image, and a note if it moved.

    Below the oldest: the oldest (the app may need changes, said so). Between supported
    versions (Node's odd releases): the next one up. Above the newest: the newest.
    """
    if version is None:
        return None, None
    parts = version.split(".")
    try:
        wanted = (int(parts[0]), 0 if major_only or len(parts) < 2 else int(parts[1]))
    except ValueError:
        return None, f"The {what} version {version!r} is not one I can read; using the default."
    ordered = sorted(candidates)
    if wanted in ordered:
        return version, None
    if wanted < ordered[0]:
        pick = ordered[0]
        note = (
            f"The app pins {what} {version}, which is too old to have a maintained image; "
            f"using {_fmt(pick, major_only)}, the oldest supported (the app may need updating)."
        )
    elif wanted > ordered[-1]:
        pick = ordered[-1]
        note = (
            f"The app asks for {what} {version}; using {_fmt(pick, major_only)}, the newest I know."
        )
    else:
        pick = next(v for v in ordered if v > wanted)
        note = f"{what} {version} is not a supported release; using {_fmt(pick, major_only)}."
    return _fmt(pick, major_only), note


def valid_port(text: str) -> int | None:
    port = int(text)
    return port if 0 < port < 65536 else None


_VERSION_CLAUSE = re.compile(
    r"(~=|===|==|!=|>=|<=|>|<|\^|~)?\s*v?(\d+)(?:\.(\d+|\*|x))?(?:\.(\d+|\*|x))?"
)

Version = tuple[int, int]


def pick_version(
    spec: str, candidates: list[Version], default: Version, *, major_only: bool = False
) -> str | None:
    """The version to run for a constraint like `>=3.10,<3.13`, `^3.11`, `3.11.4` or `18.x`.

    A single pinned version is run as given (major.minor, or major for Node). A range gets the
    default when it allows it (that is what the images are tested with), else the allowed
    candidate nearest the default. None when the text holds no version at all.
    """
    clauses = [_Clause.parse(m, major_only) for m in _VERSION_CLAUSE.finditer(spec)]
    if not clauses:
        return None
    only = clauses[0]
    if len(clauses) == 1 and only.op in ("", "==", "===") and (major_only or only.minor >= 0):
        return _fmt((only.major, only.minor), major_only)
    if len(clauses) == 1 and only.op == "~" and major_only:
        return str(only.major)
    if all(c.allows(default) for c in clauses):
        return _fmt(default, major_only)
    # Else the allowed version nearest the default: as well tested as the range lets it be.
    for version in sorted(
        candidates, key=lambda v: (abs(v[0] - default[0]), abs(v[1] - default[1]))
    ):
        if all(c.allows(version) for c in clauses):
            return _fmt(version, major_only)
    return _fmt((only.major, max(only.minor, 0)), major_only)


def _fmt(version: Version, major_only: bool) -> str:
    return str(version[0]) if major_only else f"{version[0]}.{max(version[1], 0)}"


@dataclass(frozen=True)
class _Clause:
    op: str
    major: int
    minor: int  # -1 when absent or a wildcard
    has_patch: bool

    @staticmethod
    def parse(m: re.Match[str], major_only: bool) -> _Clause:
        minor = m.group(3)
        patch = m.group(4)
        return _Clause(
            op=m.group(1) or "",
            major=int(m.group(2)),
            minor=int(minor) if minor and minor.isdigit() and not major_only else -1,
            has_patch=bool(patch and patch.isdigit()),
        )

    def allows(self, version: Version) -> bool:
        if self.minor < 0:
            # Only a major: compare majors (`3.*`, `18.x`, `>=18`).
            v, want = version[0], self.major
            return {
                "": v == want,
                "==": v == want,
                "===": v == want,
                "!=": v != want,
                ">=": v >= want,
                ">": v > want,
                "<=": v <= want,
                "<": v < want,
                "^": v == want,
                "~": v == want,
                "~=": v == want,
            }.get(self.op, False)
        want2 = (self.major, self.minor)
        return {
            "": version == want2,
            "==": version == want2,
            "===": version == want2,
            "!=": version != want2,
            ">=": version >= want2,
            ">": version >= want2 if self.has_patch else version > want2,
            "<=": version <= want2,
            "<": version < want2,
            "^": version >= want2 and version[0] == self.major,
            "~": version == want2,
            "~=": version == want2
            if self.has_patch
            else (version >= want2 and version[0] == self.major),
        }.get(self.op, False)


def scan_port(
    repo: RepoFiles,
    found: Findings,
    sources: list[str],
    reads_port: re.Pattern[str],
    port_patterns: Iterable[re.Pattern[str]],
) -> bool:
    """Record whether the code reads PORT and the port it falls back to; True if one is found.

    The entry point is searched first: where several files name a port, it is the one that
    starts the server.
    """
    ordered = sorted(sources, key=lambda f: f != found.entry_point)
    reads = first_match(repo, ordered, reads_port)
    if reads:
        found.reads_port_env = True
        found.add("port", repo.evidence(reads[0], reads[1]))
    for pattern in port_patterns:
        hit = first_match(repo, ordered, pattern)
        if hit and (port := valid_port(hit[2].group(1))):
            found.port = port
            found.add("port", repo.evidence(hit[0], hit[1]))
            return True
    return False


# Routes as the common frameworks declare them: @app.get("/x"), app.get('/x', ...),
# HandleFunc("/x", ...), r.GET("/x", ...).
_ROUTE = re.compile(
    r"""(?:@\w+\.(?:get|route|api_route)|\.(?:get|GET|HandleFunc|Handle|Get))\(\s*['"](/[^'"]*)['"]"""
)
_HEALTH_ROUTES = ("/healthz", "/health", "/api/health", "/status", "/ping", "/readyz")


def pick_health_path(repo: RepoFiles, found: Findings, sources: list[str]) -> None:
    """`/`, unless the code declares routes, none of them `/`, and a health route among them:
    an API without a root page answers 404 on `/` however healthy it is."""
    routes: dict[str, Evidence] = {}
    for rel, line, match in all_matches(repo, sources[:100], _ROUTE):
        routes.setdefault(match.group(1), repo.evidence(rel, line))
    if not routes or "/" in routes:
        return
    for path in _HEALTH_ROUTES:
        if path in routes:
            found.health_path = path
            found.add("health", routes[path])
            return
