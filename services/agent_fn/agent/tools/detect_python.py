"""Python web apps: Flask, FastAPI, Django; their dependencies, app object, version and port."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from . import django_overlay
from .analysis_model import Evidence, Framework, Server, Tests
from .detect_common import (
    MAX_SCANNED_SOURCES,
    Findings,
    all_matches,
    file_evidence,
    first_match,
    pick_health_path,
    pick_version,
    scan_env_vars,
    scan_port,
    supported,
)
from .repo_files import RepoFiles

# The versions with maintained python:<v>-slim-bookworm images.
PYTHON_VERSIONS = [(3, 10), (3, 11), (3, 12), (3, 13), (3, 14)]
DEFAULT_PYTHON = (3, 12)

# What our start command needs when the project does not depend on it already.
SERVER_PINS = {"gunicorn": "gunicorn==23.0.0", "uvicorn": "uvicorn[standard]==0.34.0"}

_MARKERS = (
    "requirements.txt",
    "pyproject.toml",
    "Pipfile",
    "setup.py",
    "setup.cfg",
    "uv.lock",
    "poetry.lock",
    "manage.py",
)
_REQUIREMENTS = (
    "requirements.txt",
    "requirements/prod.txt",
    "requirements/production.txt",
    "requirements/base.txt",
    "requirements/common.txt",
)
# Where an app object usually lives, best first, among files that define one.
_PREFERRED_FILES = ("app.py", "main.py", "wsgi.py", "asgi.py", "server.py", "application.py")

_FLASK_IMPORT = re.compile(r"^\s*(?:from\s+flask\s+import\b|import\s+flask\b)")
_FLASK_APP = re.compile(r"^(\w+)\s*(?::\s*\w+\s*)?=\s*(?:flask\.)?Flask\(")
_FLASK_FACTORY = re.compile(r"^def\s+(create_app|make_app)\s*\(")
_ASGI_FACTORY = re.compile(
    r"^(?:async\s+)?def\s+(create_app|make_app|get_app|build_app|app_factory)\s*\("
)
_STREAMLIT_IMPORT = re.compile(r"^\s*(?:import\s+streamlit\b|from\s+streamlit\b)")
_GRADIO_IMPORT = re.compile(r"^\s*(?:import\s+gradio\b|from\s+gradio\b)")
_LAUNCH = re.compile(r"\.launch\(")
_ALLOWED_HOSTS = re.compile(r"^\s*ALLOWED_HOSTS\s*(?::[^=]+)?=")
_CSRF_ORIGINS = re.compile(r"^\s*CSRF_TRUSTED_ORIGINS\s*(?::[^=]+)?=")
_STATIC_ROOT = re.compile(r"^\s*STATIC_ROOT\s*(?::[^=]+)?=")
# Settings that fail without a variable: os.environ["X"], django-environ's env("X") and
# python-decouple's config("X"), when they give no default.
_REQUIRED_ENV = re.compile(
    r"(?:\benviron\[\s*['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]\s*\]"
    r"|\b(?:env(?:\.\w+)?|config)\(\s*['\"]([A-Z_][A-Z0-9_]*)['\"]\s*\))"
)
_FASTAPI_IMPORT = re.compile(r"^\s*(?:from\s+fastapi\s+import\b|import\s+fastapi\b)")
_FASTAPI_APP = re.compile(r"^(\w+)\s*(?::\s*\w+\s*)?=\s*(?:fastapi\.)?FastAPI\(")
_DJANGO_SETTINGS = re.compile(r"DJANGO_SETTINGS_MODULE['\"]?\s*,\s*['\"]([\w.]+)['\"]")
_DJANGO_WSGI = re.compile(r"^\s*WSGI_APPLICATION\s*=\s*['\"]([\w.]+)['\"]")
_DJANGO_IMPORT = re.compile(r"^\s*(?:from\s+django[\w.]*\s+import\b|import\s+django\b)")

_RUN_PORT = re.compile(r"\.run\([^#]*?\bport\s*=\s*(\d{2,5})\b")
_ENV_PORT_DEFAULT = re.compile(
    r"(?:environ\.get|getenv)\(\s*['\"]PORT['\"]\s*,\s*['\"]?(\d{2,5})\b"
)
_READS_PORT = re.compile(
    r"(?:environ\.get|getenv|environ\[|environ\.setdefault)\(?\s*['\"]PORT['\"]"
)
_ENV_PATTERNS = (
    re.compile(
        r"\b(?:os\.)?environ\.(?:get|setdefault|pop)\(\s*['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]"
    ),
    re.compile(r"\b(?:os\.)?environ\[\s*['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]\s*\]"),
    re.compile(r"\b(?:os\.)?getenv\(\s*['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]"),
)
_FRAMEWORK_DEFAULT_PORT: dict[Framework, int] = {
    "flask": 5000,
    "fastapi": 8000,
    "django": 8000,
    "streamlit": 8501,
    "gradio": 7860,
}
# On Cloud Run, the service answers on <name>-<hash>.<region>.run.app.
DJANGO_CLOUD_ENV = {
    django_overlay.HOSTS_ENV: ".run.app,localhost,127.0.0.1",
    django_overlay.ORIGINS_ENV: "https://*.run.app",
}
_PROCFILE_TARGET = re.compile(
    r"(?:gunicorn|uvicorn)\b.*?\s['\"]?([\w.]+:[A-Za-z_][\w.]*(?:\([^)]*\))?)['\"]?(?:\s|$)"
)


def is_python(repo: RepoFiles) -> bool:
    return any(repo.exists(m) for m in _MARKERS) or any(
        "/" not in f for f in repo.with_suffix(".py")
    )


def detect_python(repo: RepoFiles, procfile_web: tuple[str, Evidence] | None) -> Findings:
    found = Findings(language="python")
    sources = [f for f in repo.with_suffix(".py", limit=MAX_SCANNED_SOURCES)]
    deps = _dependencies(repo, found)
    _version(repo, found)
    _framework(repo, found, sources, deps)
    if found.framework is not None:
        _port(repo, found, sources)
        _server(found, deps, procfile_web)
        if found.framework in ("flask", "fastapi"):
            pick_health_path(repo, found, sources)
    found.env_vars = scan_env_vars(repo, sources, _ENV_PATTERNS)
    found.tests = _tests(repo, found, deps)
    return found


def _dependencies(repo: RepoFiles, found: Findings) -> dict[str, Evidence]:
    """Declared dependency names (normalised) with the line that declares each."""
    pyproject = _toml(repo, "pyproject.toml")
    has_poetry = "poetry" in pyproject.get("tool", {})
    requirements = repo.first(*_REQUIREMENTS)
    if repo.exists("uv.lock"):
        found.package_manager, found.manifest, found.lock_file = "uv", "pyproject.toml", "uv.lock"
    elif repo.exists("poetry.lock") or has_poetry:
        found.package_manager, found.manifest = "poetry", "pyproject.toml"
        found.lock_file = repo.first("poetry.lock")
    elif repo.exists("Pipfile"):
        found.package_manager, found.manifest = "pipenv", "Pipfile"
        found.lock_file = repo.first("Pipfile.lock")
    elif requirements:
        found.package_manager, found.manifest = "pip", requirements
    elif repo.exists("pyproject.toml"):
        found.package_manager, found.manifest = "pip", "pyproject.toml"
    if found.manifest:
        found.add("package_manager", file_evidence(found.manifest))
    if found.lock_file:
        found.add("package_manager", file_evidence(found.lock_file))

    deps: dict[str, Evidence] = {}
    for rel in (requirements, "pyproject.toml", "Pipfile"):
        if rel is None or not repo.exists(rel):
            continue
        for name in _declared(repo, rel):
            if name not in deps and (evidence := _declaration(repo, rel, name)):
                deps[name] = evidence
    return deps


_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _declared(repo: RepoFiles, rel: str) -> list[str]:
    """Normalised names of the packages a manifest declares (runtime and dev alike)."""
    if rel.endswith(".txt"):
        return [_normalise(m.group(1)) for _, m in repo.grep(rel, _REQUIREMENT)]
    data = _toml(repo, rel)
    names: list[str] = []
    if rel == "Pipfile":
        for section in ("packages", "dev-packages"):
            names += list(_table(data.get(section)))
        return [_normalise(n) for n in names]
    project = _table(data.get("project"))
    specs: list[Any] = list(project.get("dependencies") or [])
    for group in (
        *_table(project.get("optional-dependencies")).values(),
        *_table(data.get("dependency-groups")).values(),
    ):
        specs += list(group) if isinstance(group, list) else []
    for spec in specs:
        if isinstance(spec, str) and (m := _REQUIREMENT.match(spec)):
            names.append(m.group(1))
    poetry = _table(_table(data.get("tool")).get("poetry"))
    names += list(_table(poetry.get("dependencies")))
    names += list(_table(poetry.get("dev-dependencies")))
    for group in _table(poetry.get("group")).values():
        names += list(_table(_table(group).get("dependencies")))
    return [_normalise(n) for n in names if n.lower() != "python"]


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _declaration(repo: RepoFiles, rel: str, name: str) -> Evidence | None:
    spelled = "[-_.]".join(re.escape(part) for part in name.split("-"))
    pattern = re.compile(rf"(?:^|['\"\s]){spelled}\s*(?:[\[=<>~!;,'\"]|$)", re.IGNORECASE)
    hit = first_match(repo, [rel], pattern)
    return repo.evidence(rel, hit[1]) if hit else None


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _toml(repo: RepoFiles, rel: str) -> dict[str, Any]:
    text = repo.read(rel)
    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


def _version(repo: RepoFiles, found: Findings) -> None:
    checks = (
        (".python-version", re.compile(r"^\s*(?:python-?)?(\d+(?:\.\d+)*)")),
        ("runtime.txt", re.compile(r"^\s*python-(\d+(?:\.\d+)*)")),
        ("pyproject.toml", re.compile(r"^\s*requires-python\s*=\s*['\"]([^'\"]+)['\"]")),
        ("pyproject.toml", re.compile(r"^\s*python\s*=\s*['\"]([^'\"]+)['\"]")),
        ("Pipfile", re.compile(r"^\s*python_(?:full_)?version\s*=\s*['\"]([^'\"]+)['\"]")),
    )
    for rel, pattern in checks:
        hit = first_match(repo, [rel], pattern) if repo.exists(rel) else None
        if hit is None:
            continue
        version = pick_version(hit[2].group(1), PYTHON_VERSIONS, DEFAULT_PYTHON)
        if version is not None:
            version, note = supported(version, PYTHON_VERSIONS, what="Python")
            if note:
                found.warnings.append(f"{note} (from {rel}, line {hit[1]})")
            found.language_version = version
            found.add("language_version", repo.evidence(hit[0], hit[1]))
            return


def _framework(
    repo: RepoFiles, found: Findings, sources: list[str], deps: dict[str, Evidence]
) -> None:
    for dep in ("django", "fastapi", "flask"):
        if dep in deps:
            found.add("language", deps[dep])
    if _django(repo, found, sources, deps):
        return
    found_apps = {
        name: sorted(all_matches(repo, sources, app_re), key=lambda hit: _file_rank(hit[0]))
        for name, app_re in (("fastapi", _FASTAPI_APP), ("flask", _FLASK_APP))
    }
    if not found_apps["fastapi"] and not found_apps["flask"]:
        for name, import_re in (("streamlit", _STREAMLIT_IMPORT), ("gradio", _GRADIO_IMPORT)):
            if _script_app(repo, found, sources, deps, name, import_re):
                return
    for framework, import_re in (("fastapi", _FASTAPI_IMPORT), ("flask", _FLASK_IMPORT)):
        apps = found_apps[framework]
        imports = all_matches(repo, sources, import_re)
        if not apps and not imports and framework not in deps:
            continue
        found.framework = "fastapi" if framework == "fastapi" else "flask"
        if framework in deps:
            found.add("framework", deps[framework])
        if apps:
            rel, line, match = apps[0]
            found.add("framework", repo.evidence(rel, line))
            found.entry_point = rel
            found.app_target = f"{_module(rel)}:{match.group(1)}"
            found.add("entry_point", repo.evidence(rel, line))
        elif framework == "flask" and (hit := first_match(repo, sources, _FLASK_FACTORY)):
            rel, line, match = hit
            found.entry_point = rel
            found.app_target = f"{_module(rel)}:{match.group(1)}()"
            found.factory = True
            found.add("entry_point", repo.evidence(rel, line))
        elif framework == "fastapi" and (hit := first_match(repo, sources, _ASGI_FACTORY)):
            # uvicorn calls the factory itself with --factory.
            rel, line, match = hit
            found.entry_point = rel
            found.app_target = f"{_module(rel)}:{match.group(1)}"
            found.factory = True
            found.add("entry_point", repo.evidence(rel, line))
        else:
            guess = repo.first(*_PREFERRED_FILES) or (imports[0][0] if imports else "app.py")
            found.entry_point = guess
            found.app_target = f"{_module(guess)}:app"
            found.warnings.append(
                f"Could not find where the {framework} app object is created; "
                f"assuming `{found.app_target}`."
            )
        for rel, line, _ in imports[:1]:
            found.add("framework", repo.evidence(rel, line))
        return


_SCRIPT_FILES = ("streamlit_app.py", "app.py", "main.py", "Home.py", "Hello.py", "demo.py")


def _script_app(
    repo: RepoFiles,
    found: Findings,
    sources: list[str],
    deps: dict[str, Evidence],
    name: str,
    import_re: re.Pattern[str],
) -> bool:
    """Streamlit and Gradio: a script that is the app, run by `streamlit run` or `python`."""
    imports = all_matches(repo, sources, import_re)
    if not imports:
        return False
    files = [hit[0] for hit in imports]
    if name == "gradio":
        launching = [rel for rel in files if first_match(repo, [rel], _LAUNCH)]
        files = launching or files

    def rank(rel: str) -> tuple[int, int, str]:
        base = rel.rsplit("/", 1)[-1]
        order = _SCRIPT_FILES.index(base) if base in _SCRIPT_FILES else len(_SCRIPT_FILES)
        return rel.count("/"), order, rel

    entry = min(files, key=rank)
    line = next(line for rel, line, _ in imports if rel == entry)
    found.framework = "streamlit" if name == "streamlit" else "gradio"
    if name in deps:
        found.add("framework", deps[name])
    found.add("framework", repo.evidence(entry, line))
    found.entry_point = found.app_target = entry
    found.add("entry_point", repo.evidence(entry, line))
    if name == "gradio" and (hit := first_match(repo, [entry], _LAUNCH)):
        found.add("entry_point", repo.evidence(entry, hit[1]))
    return True


def _django(
    repo: RepoFiles, found: Findings, sources: list[str], deps: dict[str, Evidence]
) -> bool:
    manage = repo.first("manage.py")
    if manage is None and "django" not in deps:
        return False
    settings_hit = first_match(repo, [manage], _DJANGO_SETTINGS) if manage else None
    if manage is None or ("django" not in deps and settings_hit is None):
        return False
    found.framework = "django"
    found.add("framework", *([deps["django"]] if "django" in deps else []))
    if settings_hit:
        found.add("framework", repo.evidence(settings_hit[0], settings_hit[1]))
    wsgi_hit = first_match(repo, sources, _DJANGO_WSGI)
    if wsgi_hit:
        dotted = wsgi_hit[2].group(1)  # e.g. mysite.wsgi.application
        module, _, obj = dotted.rpartition(".")
        found.app_target = f"{module}:{obj}"
        found.entry_point = module.replace(".", "/") + ".py"
        found.add("entry_point", repo.evidence(wsgi_hit[0], wsgi_hit[1]))
    else:
        wsgi = next((f for f in sources if f.endswith("/wsgi.py")), None)
        if wsgi is None:
            found.entry_point = manage
            found.app_target = "wsgi:application"
            found.warnings.append("Django project without a wsgi.py; assuming `wsgi:application`.")
        else:
            found.entry_point = wsgi
            found.app_target = f"{_module(wsgi)}:application"
            found.add("entry_point", file_evidence(wsgi))
    _django_settings(repo, found, settings_hit[2].group(1) if settings_hit else None, wsgi_hit)
    return True


def _django_settings(
    repo: RepoFiles,
    found: Findings,
    module: str | None,
    wsgi_hit: tuple[str, int, re.Match[str]] | None,
) -> None:
    """Static files and allowed hosts: what a Django app needs to answer on Cloud Run."""
    rel = module.replace(".", "/") + ".py" if module else None
    if rel and not repo.exists(rel) and repo.exists(rel[:-3] + "/__init__.py"):
        rel = rel[:-3] + "/__init__.py"
    if rel is None or not repo.exists(rel):
        rel = wsgi_hit[0] if wsgi_hit and wsgi_hit[0].endswith("settings.py") else None
        module = _module(rel) if rel else module
    found.django_settings = module
    if rel is None:
        found.warnings.append("Could not find the Django settings file.")
        return
    static = first_match(repo, [rel], _STATIC_ROOT)
    if static:
        found.collectstatic = True
        found.add("static_files", repo.evidence(rel, static[1]))
    else:
        found.warnings.append(
            f"Django: {rel} sets no STATIC_ROOT, so `collectstatic` cannot run and static "
            "files will not be served in production; set it (and use WhiteNoise)."
        )
    for pattern in (_ALLOWED_HOSTS, _CSRF_ORIGINS):
        if hit := first_match(repo, [rel], pattern):
            found.add("hosts", repo.evidence(rel, hit[1]))
    # The overlay settings module adds the service's hosts from the environment.
    found.runtime_env = {"DJANGO_SETTINGS_MODULE": django_overlay.MODULE, **DJANGO_CLOUD_ENV}
    text = repo.read(rel) or ""
    found.build_required_env = sorted(
        {m.group(1) or m.group(2) for m in _REQUIRED_ENV.finditer(text)} - {"PORT"}
    )


def _file_rank(rel: str) -> tuple[int, int, str]:
    name = rel.rsplit("/", 1)[-1]
    preferred = _PREFERRED_FILES.index(name) if name in _PREFERRED_FILES else len(_PREFERRED_FILES)
    return rel.count("/"), preferred, rel


def _module(rel: str) -> str:
    module = rel.removesuffix(".py").replace("/", ".")
    return module.removesuffix(".__init__")


def _port(repo: RepoFiles, found: Findings, sources: list[str]) -> None:
    if scan_port(repo, found, sources, _READS_PORT, (_ENV_PORT_DEFAULT, _RUN_PORT)):
        return
    if found.framework:
        found.default_port = _FRAMEWORK_DEFAULT_PORT.get(found.framework)


def _server(
    found: Findings, deps: dict[str, Evidence], procfile_web: tuple[str, Evidence] | None
) -> None:
    if found.framework in ("streamlit", "gradio"):
        found.server = "streamlit" if found.framework == "streamlit" else "python"
        return
    server: Server = "uvicorn" if found.framework == "fastapi" else "gunicorn"
    if procfile_web:
        # The project's own Procfile knows its app object better than our guess does.
        command, evidence = procfile_web
        match = _PROCFILE_TARGET.search(command + " ")
        if match:
            found.app_target = match.group(1)
            found.factory = found.factory and "--factory" in command
            found.add("entry_point", evidence)
        if command.split()[0] == "uvicorn":
            server = "uvicorn"
        elif command.split()[0] == "gunicorn":
            server = "gunicorn"
        if honours_port(command, reads_port_env=found.reads_port_env):
            found.start_command = command
            found.add("entry_point", evidence)
    found.server = server
    present = server in deps or (server == "uvicorn" and _has_uvicorn_extra(deps))
    if not present:
        found.extra_packages.append(SERVER_PINS[server])


def honours_port(command: str, *, reads_port_env: bool) -> bool:
    """Whether a Procfile's `web:` command listens on $PORT as it is written."""
    first = command.split()[0] if command.split() else ""
    if "$PORT" in command or "${PORT" in command:
        return True
    if first == "gunicorn":
        return "--bind" not in command and "-b " not in command  # gunicorn reads PORT itself
    return first in ("python", "python3", "node") and reads_port_env


def _has_uvicorn_extra(deps: dict[str, Evidence]) -> bool:
    # `fastapi[standard]` brings uvicorn with it.
    evidence = deps.get("fastapi")
    return evidence is not None and "[standard" in evidence.snippet.replace(" ", "")


def _tests(repo: RepoFiles, found: Findings, deps: dict[str, Evidence]) -> Tests:
    dirs = repo.dirs()
    paths = [d + "/" for d in ("tests", "test") if d in dirs]
    files = [
        f
        for f in repo.with_suffix(".py")
        if f.rsplit("/", 1)[-1].startswith("test_") or f.endswith("_test.py")
    ]
    for rel in files[:8]:
        if not any(rel.startswith(p) for p in paths):
            paths.append(rel)
    paths = paths[:8]
    if not paths:
        return Tests()
    for p in paths[:2]:
        found.add("tests", file_evidence(p.rstrip("/")))
    uses_pytest = (
        "pytest" in deps
        or repo.first("pytest.ini", "conftest.py", "tests/conftest.py") is not None
        or "[tool.pytest" in (repo.read("pyproject.toml") or "")
        or any(f.rsplit("/", 1)[-1] == "conftest.py" for f in files)
    )
    return Tests(paths=paths, command="pytest" if uses_pytest or files else "python -m unittest")
