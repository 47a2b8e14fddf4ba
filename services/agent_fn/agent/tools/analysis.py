"""Analyses a repository: what the app is, how it is built and started, with the evidence.

Reads files only (see repo_files.py for the limits); nothing from the repository is run.
"""

from __future__ import annotations

import json
from pathlib import Path

from .analysis_model import Analysis, AppDir, BuildKind
from .commands import start_command
from .detect_buildpacks import detect_buildpack_stack
from .detect_common import DeployFiles, Findings, deploy_files, file_evidence
from .detect_go import detect_go, is_go
from .detect_node import detect_node, is_node
from .detect_python import detect_python, is_python
from .detect_static import detect_static
from .errors import ChooseApp, ToolError
from .repo_files import IGNORED_DIRS, Limits, RepoFiles
from .source import app_name, redact, resolve_source, subfolder_of

MAX_ANALYSIS_BYTES = 20_000
MONOREPO_DEPTH = 3  # how deep subfolders are searched for apps
MAX_OTHER_APPS = 8
MAX_CANDIDATES = 30

_LOOKED_FOR = (
    "Python (requirements.txt, pyproject.toml or Pipfile with Flask, FastAPI, Django, Streamlit "
    "or Gradio), Node (package.json with Express, Next.js, Fastify, Koa, a start script, or a "
    "Vite, Create React App or Angular build), Go (go.mod with a main package serving HTTP), "
    "Java (pom.xml, build.gradle), PHP (composer.json), Ruby (Gemfile), .NET (*.csproj), "
    "a Dockerfile, and static sites (index.html)"
)
_SITE_FOLDERS = frozenset({"public", "static", "docs", "site", "www", "templates"})
_APP_MARKERS = (
    "Dockerfile", "package.json", "requirements.txt", "pyproject.toml", "Pipfile", "manage.py",
    "go.mod", "pom.xml", "build.gradle", "build.gradle.kts", "composer.json", "Gemfile",
    "index.html",
)  # fmt: skip


def analyse_repository(
    source: str,
    *,
    workdir: Path,
    clone_timeout_s: float = 60,
    max_repo_bytes: int = 200_000_000,
    local_root: Path | None = None,
    subfolder: str | None = None,
) -> Analysis:
    """Analyse a git URL (cloned shallowly into `workdir`) or a local directory.

    Local directories must be inside `local_root`; None turns them off (git URLs only).
    `subfolder`: the app's folder inside the repository (monorepos).
    """
    resolved = resolve_source(
        source,
        workdir=workdir,
        clone_timeout_s=clone_timeout_s,
        max_repo_bytes=max_repo_bytes,
        local_root=local_root,
    )
    path, sub = subfolder_of(resolved.path, subfolder)
    name = resolved.name if sub is None else app_name(f"{resolved.name}-{sub.rsplit('/', 1)[-1]}")
    return analyse_directory(
        path,
        source=redact(source),
        name=name,
        commit=resolved.commit,
        subfolder=sub,
    )


def analyse_directory(
    path: Path,
    *,
    source: str | None = None,
    name: str | None = None,
    commit: str | None = None,
    limits: Limits | None = None,
    subfolder: str | None = None,
) -> Analysis:
    repo = RepoFiles(path, limits)
    shown = source or str(path)
    where = f"{shown} (folder {subfolder})" if subfolder else shown
    if not repo.files:
        raise ToolError(
            f"{where} is empty (or holds only dependencies and build output): "
            "there is no app to deploy."
        )
    deploy = deploy_files(repo)
    found, hints = _detect(repo, deploy)
    others = _apps_in_subfolders(repo) if found is None or found.language == "static" else []
    if others and (found is None or found.entry_point != "index.html"):
        raise ChooseApp(
            _which_app(where, others, found is not None),
            [
                {"subfolder": a.subfolder, "language": a.language, "framework": a.framework}
                for a in others
            ],
        )
    if found is None and deploy.repo_dockerfile is not None:
        found = _dockerfile_only(deploy, hints)
    if found is None:
        detail = f" I found {'; '.join(hints)}." if hints else ""
        raise ToolError(
            f"I could not tell what kind of app {where} is.{detail} I looked for "
            f"{_LOOKED_FOR}. If it is an app, add a Dockerfile (I will build with it), or point "
            "me at the folder that holds the app."
        )
    analysis = _assemble(found, deploy, repo, source=shown, name=name or app_name(str(path)))
    analysis.commit = commit
    analysis.subfolder = subfolder
    if found.language != "static":
        analysis.other_apps = _apps_in_subfolders(repo)
    if repo.truncated:
        analysis.warnings.append(
            f"The repository has more than {repo.limits.max_files} files; "
            "I looked at the first ones only."
        )
    return _compact(analysis)


def _detect(repo: RepoFiles, deploy: DeployFiles) -> tuple[Findings | None, list[str]]:
    hints: list[str] = []
    if is_go(repo):
        found = detect_go(repo)
        if found.framework is not None:
            return found, hints
        hints.append(
            "a Go module without a main package"
            if found.entry_point is None
            else "a Go main package that does not serve HTTP (no net/http or known router)"
        )
    if is_python(repo):
        found = detect_python(repo, deploy.procfile_web)
        if found.framework is not None:
            return found, hints
        hints.append(
            "Python code"
            + (f" ({found.manifest})" if found.manifest else "")
            + " but no web framework: no Flask, FastAPI or Django import or dependency"
        )
    if is_node(repo):
        found = detect_node(repo)
        if found.framework is not None and found.server is not None:
            return found, hints
        hints.append("a package.json without a server: no start script or server file")
    found_bp = detect_buildpack_stack(repo)
    if found_bp is not None:
        if found_bp.framework is not None:
            return found_bp, hints
        hints.append(f"{found_bp.language} ({found_bp.manifest}) without a web entry point")
    static = detect_static(repo)
    if static is not None:
        return static, hints
    return None, hints


def _dockerfile_only(deploy: DeployFiles, hints: list[str]) -> Findings:
    """Nothing we recognise, but a Dockerfile: it knows how to build and start the app."""
    info = deploy.repo_dockerfile
    assert info is not None
    found = Findings(language="other", framework="unknown", server="dockerfile")
    found.entry_point = found.app_target = info.path
    found.start_command = info.cmd or "as the Dockerfile says"
    found.port = info.expose
    found.reads_port_env = bool(info.honours_port)
    found.add("entry_point", *deploy.dockerfile_evidence[:2])
    if hints:
        found.warnings.append(f"I found {'; '.join(hints)}; the Dockerfile decides how it runs.")
    return found


def _apps_in_subfolders(repo: RepoFiles) -> list[AppDir]:
    """Apps in subfolders, shallowest first: where a monorepo keeps them."""
    candidates = sorted(
        {
            f.rsplit("/", 1)[0]
            for f in repo.files
            if "/" in f
            and f.rsplit("/", 1)[1] in _APP_MARKERS
            and f.count("/") <= MONOREPO_DEPTH
            and not any(part in IGNORED_DIRS for part in f.split("/"))
        },
        key=lambda d: (d.count("/"), d),
    )[:MAX_CANDIDATES]  # each one is listed and read: a bound on the work
    apps: list[AppDir] = []
    for folder in candidates:
        if len(apps) >= MAX_OTHER_APPS:
            break
        if any(folder.startswith(a.subfolder + "/") for a in apps):
            continue  # inside an app already found: its own parts, not another app
        sub = RepoFiles(repo.root / folder, Limits(max_depth=4, max_files=2000))
        try:
            found, _ = _detect(sub, deploy_files(sub))
        except Exception:  # a subfolder we cannot read is not worth failing the analysis for
            continue
        if found is None and (info := deploy_files(sub).repo_dockerfile) is not None:
            found = _dockerfile_only(deploy_files(sub), [])
            found.add("framework", file_evidence(info.path))
        site_folder = folder.rsplit("/", 1)[-1] in _SITE_FOLDERS
        if found is None or found.framework is None or (found.language == "static" and site_folder):
            continue
        evidence = next(
            iter(found.evidence.get("framework") or found.evidence.get("language") or []), None
        )
        if evidence is None:
            continue
        apps.append(
            AppDir(
                subfolder=folder,
                language=found.language,
                framework=found.framework,
                evidence=evidence.model_copy(update={"file": f"{folder}/{evidence.file}"}),
            )
        )
    return apps


def _which_app(where: str, apps: list[AppDir], root_is_site: bool) -> str:
    listed = "; ".join(
        f"`{a.subfolder}/` ({a.language} {a.framework}, {a.evidence.file})" for a in apps
    )
    first = apps[0].subfolder
    root = " Its root holds only a static page." if root_is_site else ""
    return (
        f"{where} holds several apps, not one at its root.{root} I found: {listed}. Which one "
        f"should I use? Say, for example, `analyse the {first} folder of {where}`."
    )


def _assemble(
    found: Findings, deploy: DeployFiles, repo: RepoFiles, *, source: str, name: str
) -> Analysis:
    assert found.framework is not None and found.server is not None
    assert found.entry_point is not None and found.app_target is not None
    if deploy.dockerfile:
        found.add("dockerfile", *deploy.dockerfile_evidence)
        if deploy.expose:
            found.add("dockerfile", deploy.expose[1])
            if found.port is None:
                found.port = deploy.expose[0]
                found.add("port", deploy.expose[1])
    if found.port is None:
        found.port = found.default_port
    if deploy.procfile:
        found.add(
            "procfile",
            deploy.procfile_web[1] if deploy.procfile_web else file_evidence(deploy.procfile),
        )
    if (
        found.server in ("node", "npm", "go")
        and not found.reads_port_env
        and found.port is not None
    ):
        found.warnings.append(
            f"The app listens on port {found.port} and does not read PORT; "
            f"it will be run on port {found.port}."
        )
    build, reason = _build(found, deploy)
    found.add(
        "build", *(deploy.dockerfile_evidence[:1] if build == "repository_dockerfile" else ())
    )
    return Analysis(
        source=source,
        path=str(repo.root),
        name=name,
        language=found.language,
        language_version=found.language_version,
        framework=found.framework,
        package_manager=found.package_manager,
        manifest=found.manifest,
        lock_file=found.lock_file,
        entry_point=found.entry_point,
        app_target=found.app_target,
        server=found.server,
        start_command=found.start_command
        or start_command(found.server, found.app_target, factory=found.factory),
        extra_packages=found.extra_packages,
        build_script=found.build_script,
        port=found.port,
        reads_port_env=found.reads_port_env,
        env_vars=found.env_vars,
        dockerfile=deploy.dockerfile,
        procfile=deploy.procfile,
        procfile_web=deploy.procfile_web[0] if deploy.procfile_web else None,
        repo_dockerfile=deploy.repo_dockerfile,
        build=build,
        build_reason=reason,
        build_tool=found.build_tool,
        build_output=found.build_output,
        assets=found.assets,
        factory=found.factory,
        next_standalone=found.next_standalone,
        django_settings=found.django_settings,
        collectstatic=found.collectstatic,
        build_required_env=found.build_required_env,
        runtime_env=found.runtime_env,
        build_env=found.build_env,
        local_run=found.local_run,
        health_path=found.health_path,
        tests=found.tests,
        warnings=found.warnings,
        evidence=found.evidence,
    )


def _build(found: Findings, deploy: DeployFiles) -> tuple[BuildKind, str]:
    if deploy.repo_dockerfile is not None:
        info = deploy.repo_dockerfile
        port = (
            "it reads $PORT"
            if info.honours_port
            else f"it listens on {info.expose}"
            if info.expose
            else "its port is not stated"
        )
        return (
            "repository_dockerfile",
            f"The Cloud Run build uses the repository's own {info.path} ({port}).",
        )
    if found.server in ("buildpack", "java"):
        return (
            "buildpacks",
            f"The Cloud Run build uses Google Cloud's buildpacks for {found.language} "
            f"({found.build_tool}), as `gcloud run deploy --source` does: no Dockerfile needed.",
        )
    return "generated_dockerfile", "The Cloud Run build uses a Dockerfile I write for it."


def _compact(analysis: Analysis) -> Analysis:
    """Trim what grows with the repository (env vars) until the JSON fits the event."""

    def size() -> int:
        return len(json.dumps(analysis.model_dump(mode="json")))

    if size() <= MAX_ANALYSIS_BYTES:
        return analysis
    for var in analysis.env_vars:
        var.evidence = var.evidence[:1]
    if size() > MAX_ANALYSIS_BYTES:
        analysis.warnings.append("Some environment variables were left out to keep this short.")
    while analysis.env_vars and size() > MAX_ANALYSIS_BYTES:
        analysis.env_vars = analysis.env_vars[: len(analysis.env_vars) * 3 // 4]
    return analysis
