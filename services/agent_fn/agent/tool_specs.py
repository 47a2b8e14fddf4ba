"""The tools the model may call: their arguments as pydantic models, their JSON schemas.

The same models validate what the model sends back: a call with bad arguments gets an error
response it can correct, never a crash.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from .model import ToolSpec

Source = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
# A folder inside the repository (monorepos); checked against the tree when it is used.
Subfolder = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnalyseArgs(_Args):
    source: Source
    subfolder: Subfolder | None = None


class DockerfileArgs(_Args):
    source: Source | None = None
    subfolder: Subfolder | None = None


class DeployArgs(_Args):
    source: Source
    subfolder: Subfolder | None = None
    target: Literal["local", "cloud_run"]
    project: Name | None = None
    region: Name | None = None
    service: Name | None = None


TOOLS: dict[str, tuple[type[_Args], str]] = {
    "analyse_repository": (
        AnalyseArgs,
        "Analyse an application's repository: a git URL or a path. Finds its language and "
        "version, framework, package manager, start command, port, environment variables, "
        "Dockerfile and tests, with the file and line that show each, and how it will be built "
        "(its own Dockerfile, one we write, or buildpacks). For a monorepo, give `subfolder` "
        "(e.g. 'backend'); without it, the apps found in subfolders are listed. The result is "
        "shown to the user as a card.",
    ),
    "generate_dockerfile": (
        DockerfileArgs,
        "Write a production Dockerfile and .dockerignore for the repository (the one analysed "
        "last if no source is given), into its folder when it is a local one that has none. "
        "The Dockerfile is shown to the user by this tool.",
    ),
    "request_deployment": (
        DeployArgs,
        "Ask the user to confirm a deployment of the repository, to this machine (target "
        "'local', for a quick try) or to Cloud Run (target 'cloud_run', with project, region "
        "and service name); `subfolder` for an app inside a monorepo. Nothing is deployed "
        "until the user confirms.",
    ),
}


def tool_specs() -> list[ToolSpec]:
    return [
        ToolSpec(name, description, _schema(args)) for name, (args, description) in TOOLS.items()
    ]


def _schema(args: type[_Args]) -> dict[str, object]:
    schema = args.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema
