"""Node apps: Express, Next.js and other servers started from package.json."""

from __future__ import annotations

import json
import re
from typing import Any

from .analysis_model import Evidence, Framework, Tests
from .detect_common import (
    MAX_SCANNED_SOURCES,
    Findings,
    file_evidence,
    first_match,
    pick_health_path,
    pick_version,
    scan_env_vars,
    scan_port,
    supported,
)
from .repo_files import RepoFiles

# LTS lines with node:<v>-bookworm-slim images.
NODE_VERSIONS = [(18, 0), (20, 0), (22, 0), (24, 0)]
DEFAULT_NODE = (20, 0)
_LTS_NAMES = {"hydrogen": "18", "iron": "20", "jod": "22", "krypton": "24"}
# Single-page app toolchains: the dependency, the framework, where `npm run build` writes.
_SPA_DEPS: tuple[tuple[str, Framework, str], ...] = (
    ("@angular/core", "angular", "dist"),
    ("react-scripts", "create-react-app", "build"),
    ("vite", "vite", "dist"),
)
# Frameworks with a server of their own: a `vite` dependency beside one is not an SPA.
_SERVER_DEPS = frozenset(
    {"next", "express", "fastify", "koa", "nuxt", "@sveltejs/kit", "@remix-run/node", "astro",
     "@nestjs/core", "hono", "@hapi/hapi"}
)  # fmt: skip
_OUT_DIR = re.compile(r"""\boutDir\s*:\s*['"]([\w./-]+)['"]""")
_STANDALONE = re.compile(r"""\boutput\s*:\s*['"]standalone['"]""")

_SOURCES = (".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".jsx", ".tsx")
# package.json dependency -> framework, most specific first.
_FRAMEWORK_DEPS: tuple[tuple[str, Framework], ...] = (
    ("next", "nextjs"),
    ("express", "express"),
    ("fastify", "fastify"),
    ("koa", "koa"),
)
_ENTRY_CANDIDATES = (
    "server.js",
    "app.js",
    "index.js",
    "main.js",
    "server.mjs",
    "index.mjs",
    "src/server.js",
    "src/app.js",
    "src/index.js",
    "src/main.js",
)
_NODE_START = re.compile(r"^node\s+(?:--\S+\s+)*([\w./-]+\.(?:c|m)?js)\s*$")
_NPM_TEST_PLACEHOLDER = 'echo "Error: no test specified" && exit 1'

_IMPORT = re.compile(r"""(?:require\(\s*|from\s+|import\s+)['"]([@\w/.-]+)['"]""")
_READS_PORT = re.compile(r"process\.env(?:\.PORT\b|\[\s*['\"]PORT['\"]\s*\])")
_PORT_PATTERNS = (
    re.compile(
        r"process\.env(?:\.PORT|\[\s*['\"]PORT['\"]\s*\])\s*(?:\|\||\?\?)\s*['\"]?(\d{2,5})\b"
    ),
    re.compile(r"\.listen\(\s*(\d{2,5})\b"),
    re.compile(r"\b(?:const|let|var)\s+port\s*(?::\s*\w+\s*)?=\s*['\"]?(\d{2,5})\b", re.IGNORECASE),
)
_ENV_PATTERNS = (
    re.compile(r"process\.env\.([A-Za-z_][A-Za-z0-9_]*)"),
    re.compile(r"process\.env\[\s*['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]\s*\]"),
)


def is_node(repo: RepoFiles) -> bool:
    return repo.exists("package.json")


def detect_node(repo: RepoFiles) -> Findings:
    found = Findings(language="node", manifest="package.json")
    found.add("language", file_evidence("package.json"))
    package = _package_json(repo, found)
    _package_manager(repo, found, package)
    _version(repo, found, package)
    sources = [
        f
        for f in repo.with_suffix(*_SOURCES, limit=MAX_SCANNED_SOURCES)
        if not f.endswith((".d.ts", ".min.js"))
    ]
    scripts = package.get("scripts") if isinstance(package.get("scripts"), dict) else {}
    assert isinstance(scripts, dict)
    found.build_script = isinstance(scripts.get("build"), str)
    _framework(repo, found, package, sources)
    if found.framework is None and _spa(repo, found, package, scripts):
        found.env_vars = scan_env_vars(repo, sources, _ENV_PATTERNS)
        found.tests = _tests(repo, found, scripts)
        return found
    _entry_and_server(repo, found, package, scripts)
    if found.framework is not None:
        _port(repo, found, sources)
        if found.framework in ("express", "fastify", "koa", "node"):
            pick_health_path(repo, found, sources)
    found.env_vars = scan_env_vars(repo, sources, _ENV_PATTERNS)
    found.tests = _tests(repo, found, scripts)
    return found


def _package_json(repo: RepoFiles, found: Findings) -> dict[str, Any]:
    text = repo.read("package.json")
    try:
        package = json.loads(text) if text is not None else None
    except json.JSONDecodeError:
        package = None
    if not isinstance(package, dict):
        found.warnings.append("package.json is not valid JSON (or is too large to read).")
        return {}
    return package


def _json_line(repo: RepoFiles, key: str, rel: str = "package.json") -> Evidence:
    """The line of package.json where `"key":` appears, for evidence."""
    hit = first_match(repo, [rel], re.compile(r'"' + re.escape(key) + r'"\s*:'))
    return repo.evidence(rel, hit[1]) if hit else file_evidence(rel)


def _package_manager(repo: RepoFiles, found: Findings, package: dict[str, Any]) -> None:
    declared = str(package.get("packageManager") or "").split("@")[0]
    for lock, manager in (
        ("pnpm-lock.yaml", "pnpm"),
        ("yarn.lock", "yarn"),
        ("package-lock.json", "npm"),
        ("npm-shrinkwrap.json", "npm"),
    ):
        if repo.exists(lock):
            found.package_manager = (
                "pnpm" if manager == "pnpm" else "yarn" if manager == "yarn" else "npm"
            )
            found.lock_file = lock
            found.add("package_manager", file_evidence(lock))
            return
    if declared in ("pnpm", "yarn", "npm"):
        found.package_manager = (
            "pnpm" if declared == "pnpm" else "yarn" if declared == "yarn" else "npm"
        )
        found.add("package_manager", _json_line(repo, "packageManager"))
    else:
        found.package_manager = "npm"
    found.warnings.append("No lock file: dependency versions are resolved at install time.")


def _version(repo: RepoFiles, found: Findings, package: dict[str, Any]) -> None:
    engines = package.get("engines")
    spec = engines.get("node") if isinstance(engines, dict) else None
    if isinstance(spec, str):
        version = pick_version(spec, NODE_VERSIONS, DEFAULT_NODE, major_only=True)
        if version:
            found.language_version = _supported(found, version, "package.json engines.node")
            found.add("language_version", _json_line(repo, "node"))
            return
    for rel in (".nvmrc", ".node-version"):
        text = (repo.read(rel) or "").strip() if repo.exists(rel) else ""
        if not text:
            continue
        first = text.splitlines()[0].strip().lower()
        version = _LTS_NAMES.get(first.removeprefix("lts/"))
        version = version or pick_version(first, NODE_VERSIONS, DEFAULT_NODE, major_only=True)
        if version is None and first.startswith("lts/"):
            version = str(DEFAULT_NODE[0])
        if version:
            found.language_version = _supported(found, version, rel)
            found.add("language_version", repo.evidence(rel, 1))
            return


def _supported(found: Findings, version: str, where: str) -> str | None:
    picked, note = supported(version, NODE_VERSIONS, what="Node", major_only=True)
    if note:
        found.warnings.append(f"{note} (from {where})")
    return picked


def _spa(
    repo: RepoFiles, found: Findings, package: dict[str, Any], scripts: dict[str, Any]
) -> bool:
    """A Vite, Create React App or Angular app: built to files, served with an SPA fallback."""
    deps: dict[str, Any] = {}
    for section in ("devDependencies", "dependencies"):
        value = package.get(section)
        if isinstance(value, dict):
            deps.update(value)
    if _SERVER_DEPS & set(deps) or not isinstance(scripts.get("build"), str):
        return False
    for dep, framework, out in _SPA_DEPS:
        if dep not in deps:
            continue
        found.framework = framework
        found.server = "spa"
        found.build_script = True
        found.build_tool = found.package_manager
        found.add("framework", _json_line(repo, dep))
        found.add("build", _json_line(repo, "build"))
        found.build_output = _spa_output(repo, found, framework, out, package)
        found.entry_point = repo.first("index.html", "src/index.html", "public/index.html") or (
            "package.json"
        )
        found.app_target = found.build_output
        found.add("entry_point", file_evidence(found.entry_point))
        return True
    return False


def _spa_output(
    repo: RepoFiles, found: Findings, framework: str, default: str, package: dict[str, Any]
) -> str:
    if framework == "vite":
        config = repo.first(*(f"vite.config.{e}" for e in ("ts", "js", "mjs", "mts", "cjs")))
        hit = first_match(repo, [config], _OUT_DIR) if config else None
        if hit:
            found.add("build", repo.evidence(hit[0], hit[1]))
            return hit[2].group(1).strip("./") or default
        return default
    if framework == "angular":
        return _angular_output(repo, found, package) or f"dist/{package.get('name', 'app')}"
    return default


def _angular_output(repo: RepoFiles, found: Findings, package: dict[str, Any]) -> str | None:
    try:
        config = json.loads(repo.read("angular.json") or "{}")
    except json.JSONDecodeError:
        return None
    projects = config.get("projects") if isinstance(config, dict) else None
    if not isinstance(projects, dict) or not projects:
        return None
    name = config.get("defaultProject") or next(iter(projects))
    build = (((projects.get(name) or {}).get("architect") or {}).get("build")) or {}
    options = build.get("options") or {}
    output = options.get("outputPath")
    base = output.get("base") if isinstance(output, dict) else output
    if not isinstance(base, str):
        base = f"dist/{name}"
    found.add("build", _json_line(repo, "outputPath", "angular.json"))
    # The `application` builder (Angular 17+) writes the browser files to <outputPath>/browser.
    if str(build.get("builder", "")).endswith(":application"):
        browser = output.get("browser", "browser") if isinstance(output, dict) else "browser"
        return f"{base.strip('./')}/{browser}".rstrip("/")
    return base.strip("./")


def _framework(
    repo: RepoFiles, found: Findings, package: dict[str, Any], sources: list[str]
) -> None:
    deps = package.get("dependencies") if isinstance(package.get("dependencies"), dict) else {}
    dev = package.get("devDependencies") if isinstance(package.get("devDependencies"), dict) else {}
    assert isinstance(deps, dict) and isinstance(dev, dict)
    for dep, framework in _FRAMEWORK_DEPS:
        if dep in deps or dep in dev:
            found.framework = framework
            found.add("framework", _json_line(repo, dep))
            if dep in dev and dep not in deps:
                found.warnings.append(
                    f"`{dep}` is only a devDependency: a production install leaves it out."
                )
            for rel in sources:
                for line, match in repo.grep(rel, _IMPORT):
                    if match.group(1) == dep or match.group(1).startswith(dep + "/"):
                        found.add("framework", repo.evidence(rel, line))
                        return
            return


def _entry_and_server(
    repo: RepoFiles, found: Findings, package: dict[str, Any], scripts: dict[str, Any]
) -> None:
    start = scripts.get("start") if isinstance(scripts.get("start"), str) else None
    if found.framework == "nextjs":
        found.server = "next"
        found.app_target = "."
        found.entry_point = (
            repo.first(
                *(
                    f"{d}/{n}.{e}"
                    for d in ("app", "src/app")
                    for n in ("page", "layout")
                    for e in ("tsx", "jsx", "js", "ts")
                ),
                *(
                    f"{d}/index.{e}"
                    for d in ("pages", "src/pages")
                    for e in ("tsx", "jsx", "js", "ts")
                ),
            )
            or "package.json"
        )
        found.add("entry_point", file_evidence(found.entry_point))
        found.build_script = True
        config = repo.first(*(f"next.config.{e}" for e in ("js", "mjs", "ts", "cjs")))
        hit = first_match(repo, [config], _STANDALONE) if config else None
        if hit:
            found.next_standalone = True
            found.add("build", repo.evidence(hit[0], hit[1]))
        return
    node_start = _NODE_START.match(start.strip()) if start else None
    if node_start and repo.exists(_clean(node_start.group(1))):
        # `node server.js` directly: signals reach the app, which npm would not pass on.
        found.server, found.app_target = "node", _clean(node_start.group(1))
        found.entry_point = found.app_target
        found.add("entry_point", _json_line(repo, "start"))
        return
    main = package.get("main")
    entry = _clean(main) if isinstance(main, str) and repo.exists(_clean(main)) else None
    entry = entry or repo.first(*_ENTRY_CANDIDATES)
    if start:
        found.server, found.app_target = "npm", "start"
        found.entry_point = entry or "package.json"
        found.add("entry_point", _json_line(repo, "start"))
    elif entry:
        found.server, found.app_target, found.entry_point = "node", entry, entry
        found.add("entry_point", file_evidence(entry))
    if found.framework is None and found.server is not None:
        found.framework = "node"
        found.add("framework", found.evidence["entry_point"][0])


def _clean(path: str) -> str:
    return path.removeprefix("./")


def _port(repo: RepoFiles, found: Findings, sources: list[str]) -> None:
    if scan_port(repo, found, sources, _READS_PORT, _PORT_PATTERNS):
        return
    if found.framework == "nextjs":
        found.default_port = 3000  # `next start` without -p or PORT


def _tests(repo: RepoFiles, found: Findings, scripts: dict[str, Any]) -> Tests:
    dirs = repo.dirs()
    paths = [d + "/" for d in ("test", "tests", "__tests__") if d in dirs]
    for rel in repo.with_suffix(
        *(f".{kind}{ext}" for kind in ("test", "spec") for ext in _SOURCES)
    ):
        if len(paths) >= 8:
            break
        if not any(rel.startswith(p) for p in paths):
            paths.append(rel)
    test = scripts.get("test")
    command = (
        "npm test" if isinstance(test, str) and test.strip() != _NPM_TEST_PLACEHOLDER else None
    )
    if command:
        found.add("tests", _json_line(repo, "test"))
    for p in paths[:2]:
        found.add("tests", file_evidence(p.rstrip("/")))
    return Tests(paths=paths, command=command)
