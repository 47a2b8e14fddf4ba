"""Analyses a repository: what the app is, how it is built and started, with the evidence.

Reads files only (see repo_files.py for the limits); nothing from the repository is run.
"""

from __future__ import annotations

import json
from pathlib import Path

from .analysis_model import Analysis
from .commands import start_command
from .detect_common import DeployFiles, Findings, deploy_files, file_evidence
from .detect_go import detect_go, is_go
from .detect_node import detect_node, is_node
from .detect_python import detect_python, is_python
from .detect_static import detect_static
from .errors import ToolError
from .repo_files import Limits, RepoFiles
from .source import app_name, redact, resolve_source

MAX_ANALYSIS_BYTES = 20_000

_LOOKED_FOR = (
    "Python (requirements.txt, pyproject.toml, Pipfile with Flask, FastAPI or Django), "
    "Node (package.json with Express, Next.js, Fastify, Koa or a start script), "
    "Go (go.mod with a main package serving HTTP) and static sites (index.html)"
)


def analyse_repository(
    source: str,
    *,
    workdir: Path,
    clone_timeout_s: float = 60,
    max_repo_bytes: int = 200_000_000,
) -> Analysis:
    """Analyse a git URL (cloned shallowly into `workdir`) or a local directory."""
    resolved = resolve_source(
        source, workdir=workdir, clone_timeout_s=clone_timeout_s, max_repo_bytes=max_repo_bytes
    )
    return analyse_directory(
        resolved.path, source=redact(source), name=resolved.name, commit=resolved.commit
    )


def analyse_directory(
    path: Path,
    *,
    source: str | None = None,
    name: str | None = None,
    commit: str | None = None,
    limits: Limits | None = None,
) -> Analysis:
    repo = RepoFiles(path, limits)
    shown = source or str(path)
    if not repo.files:
        raise ToolError(
            f"{shown} is empty (or holds only dependencies and build output): "
            "there is no app to deploy."
        )
    deploy = deploy_files(repo)
    found, hints = _detect(repo, deploy)
    if found is None:
        detail = f" I found {'; '.join(hints)}." if hints else ""
        raise ToolError(
            f"I could not tell what kind of app {shown} is.{detail} I looked for {_LOOKED_FOR}."
        )
    analysis = _assemble(found, deploy, repo, source=shown, name=name or app_name(str(path)))
    analysis.commit = commit
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
    static = detect_static(repo)
    if static is not None:
        return static, hints
    return None, hints


def _assemble(
    found: Findings, deploy: DeployFiles, repo: RepoFiles, *, source: str, name: str
) -> Analysis:
    assert found.framework is not None and found.server is not None
    assert found.entry_point is not None and found.app_target is not None
    if deploy.dockerfile:
        found.add("dockerfile", file_evidence(deploy.dockerfile))
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
        start_command=start_command(found.server, found.app_target),
        extra_packages=found.extra_packages,
        build_script=found.build_script,
        port=found.port,
        reads_port_env=found.reads_port_env,
        env_vars=found.env_vars,
        dockerfile=deploy.dockerfile,
        procfile=deploy.procfile,
        procfile_web=deploy.procfile_web[0] if deploy.procfile_web else None,
        tests=found.tests,
        warnings=found.warnings,
        evidence=found.evidence,
    )


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
