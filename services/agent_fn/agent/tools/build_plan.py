"""How a Cloud Run image is built for an analysed app, decided once, in one place.

Three ways, in this order of preference:
- the repository's own Dockerfile, when it has one (the people who wrote the app know best);
- a Dockerfile we generate, for the stacks we know how to containerise well (Python, Node,
  Go, static sites and single-page apps);
- Google Cloud's buildpacks for the rest (Java, PHP, Ruby, .NET): what
  `gcloud run deploy --source` does, with `pack` or Cloud Build's `--pack`.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict

from .analysis_model import Analysis, BuildKind
from .dockerfile_gen import DEFAULT_PORT, generate_dockerfile
from .errors import ToolError

# Google Cloud's buildpacks builder, the one `gcloud run deploy --source` uses.
BUILDPACKS_BUILDER = "gcr.io/buildpacks/builder:google-22"


class BuildPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: BuildKind
    subfolder: str | None  # the app's folder inside the source, posix, or None for the root
    context_dir: Path  # source_dir / subfolder: the build context to upload
    dockerfile_path: str | None  # relative to context_dir; None for buildpacks
    dockerfile: str | None  # the generated Dockerfile's text (generated_dockerfile only)
    dockerignore: str | None  # generated .dockerignore (generated_dockerfile only)
    port: int  # the container port to give Cloud Run
    env: dict[str, str]  # environment to set on the service (e.g. Django's allowed hosts)
    build_env: dict[str, str]  # buildpacks only: e.g. GOOGLE_RUNTIME_VERSION
    builder: str | None  # buildpacks only: the builder image
    description: str  # for people: "Building with the repository's own Dockerfile (Dockerfile)"


def context_dir(source_dir: Path, analysis: Analysis) -> Path:
    """The app's folder: `source_dir` (a clone's or a local folder's root) plus the subfolder."""
    if not analysis.subfolder:
        return source_dir
    sub = PurePosixPath(analysis.subfolder)
    if sub.is_absolute() or ".." in sub.parts:
        raise ToolError(f"The subfolder {analysis.subfolder!r} is not inside the repository.")
    path = (source_dir / sub).resolve()
    if not path.is_relative_to(source_dir.resolve()) or not path.is_dir():
        raise ToolError(f"There is no folder {analysis.subfolder!r} in the repository.")
    return path


def plan_build(
    analysis: Analysis, source_dir: Path, *, prefer_generated: bool = False
) -> BuildPlan:
    """How to build `analysis`'s app from `source_dir` (the source's root, not the subfolder).

    `prefer_generated`: the user asked for our Dockerfile over the repository's own.
    """
    context = context_dir(source_dir, analysis)
    kind = analysis.build
    if kind == "repository_dockerfile" and prefer_generated and analysis.language != "other":
        kind = "buildpacks" if analysis.server in ("buildpack", "java") else "generated_dockerfile"
    where = f" in {analysis.subfolder}/" if analysis.subfolder else ""
    if kind == "repository_dockerfile":
        repo = analysis.repo_dockerfile
        path = repo.path if repo else (analysis.dockerfile or "Dockerfile")
        port = DEFAULT_PORT
        if repo is not None and repo.honours_port is False and repo.expose:
            port = repo.expose
        return BuildPlan(
            kind=kind,
            subfolder=analysis.subfolder,
            context_dir=context,
            dockerfile_path=path,
            dockerfile=None,
            dockerignore=None,
            port=port,
            env=dict(analysis.runtime_env),
            build_env={},
            builder=None,
            description=f"Building with the repository's own Dockerfile ({path}){where}.",
        )
    if kind == "buildpacks":
        return BuildPlan(
            kind=kind,
            subfolder=analysis.subfolder,
            context_dir=context,
            dockerfile_path=None,
            dockerfile=None,
            dockerignore=None,
            port=DEFAULT_PORT,  # buildpack images listen on $PORT
            env=dict(analysis.runtime_env),
            build_env=dict(analysis.build_env),
            builder=BUILDPACKS_BUILDER,
            description=(
                f"Building with Google Cloud's buildpacks ({_stack(analysis)}){where}: "
                "no Dockerfile needed."
            ),
        )
    files = generate_dockerfile(analysis)
    return BuildPlan(
        kind="generated_dockerfile",
        subfolder=analysis.subfolder,
        context_dir=context,
        dockerfile_path="Dockerfile",
        dockerfile=files.dockerfile,
        dockerignore=files.dockerignore,
        port=files.port,
        env=dict(analysis.runtime_env),
        build_env={},
        builder=None,
        description=(
            f"Building with a Dockerfile written for this {_stack(analysis)} app "
            f"({files.base_image}){where}."
        ),
    )


def _stack(analysis: Analysis) -> str:
    names = {"dotnet": ".NET", "php": "PHP", "node": "Node.js"}
    language = names.get(analysis.language, analysis.language.capitalize())
    return (
        language
        if analysis.framework in ("unknown", analysis.language)
        else f"{language} {analysis.framework}"
    )
