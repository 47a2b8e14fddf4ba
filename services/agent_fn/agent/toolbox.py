"""Runs the model's tool calls: each one once per turn, its events stored with its outcome.

A retried turn may see the same calls again (the model is asked again from the start); their
outcomes are kept in the turn's progress under a key made of the call, so a repeated call
answers from there without running the tool or storing its events a second time.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from deploychat.tracing import tracer

from .event_store import TurnLog
from .event_writes import EventDraft
from .model import ToolCall
from .session_state import Workspace, read_state
from .settings import AgentSettings
from .tool_specs import TOOLS, AnalyseArgs, DeployArgs, DockerfileArgs
from .tools import Analysis, ToolError, analyse_repository, generate_dockerfile
from .tools.errors import ChooseApp
from .tools.local_steps import can_run_here
from .tools.source import is_git_url, resolve_local, subfolder_of

log = logging.getLogger(__name__)
_tracer = tracer(__name__)


@dataclass
class ToolOutcome:
    response: dict[str, Any]  # what the model is given back
    show: str = ""  # Markdown the turn's message shows the user (e.g. the Dockerfile)


@dataclass
class _Step:
    outcome: ToolOutcome
    drafts: list[EventDraft]
    session_update: dict[str, Any]


class Toolbox:
    def __init__(
        self,
        settings: AgentSettings,
        turn_log: TurnLog,
        session: dict[str, Any],
        done: dict[str, Any],
    ) -> None:
        self._settings = settings
        self._log = turn_log
        self._turn_id = turn_log.turn_id
        self._session_id = turn_log.session_id
        workspace = read_state(session, "workspace", Workspace)
        self._workspace: dict[str, Any] = (
            workspace.model_dump(exclude_none=True) if workspace else {}
        )
        self._done = done
        self._session = session

    @property
    def workspace(self) -> dict[str, Any]:
        return self._workspace

    def run(self, call: ToolCall) -> ToolOutcome:
        entry = TOOLS.get(call.name)
        if entry is None:
            return ToolOutcome({"error": f"there is no tool named {call.name!r}"})
        model, _ = entry
        try:
            args = model.model_validate(call.args)
        except ValidationError as exc:
            return ToolOutcome({"error": f"invalid arguments for {call.name}: {exc}"})
        key = _call_key(call.name, args)
        if key in self._done:
            return ToolOutcome(**self._done[key])
        with _tracer.start_as_current_span(f"tool.{call.name}"):
            step = self._execute(call.name, args)
        self._log.append(
            step.drafts,
            {f"tools.{key}": asdict(step.outcome)},
            session_update=step.session_update,
        )
        self._done[key] = asdict(step.outcome)
        return step.outcome

    def _execute(self, name: str, args: BaseModel) -> _Step:
        if isinstance(args, AnalyseArgs):
            return self._analyse(args.source, args.subfolder)
        if isinstance(args, DockerfileArgs):
            return self._dockerfile(args.source, args.subfolder)
        if isinstance(args, DeployArgs):
            return self._request_deployment(args)
        raise AssertionError(name)

    # ---------------------------------------------------------------- sources

    @property
    def local_root(self) -> Path | None:
        """The workspace local folders must be in; None when local folders are turned off."""
        return self._settings.source_root if self._settings.local_sources else None

    def analysis_for(
        self, source: str | None, subfolder: str | None = None
    ) -> tuple[Analysis | None, list[EventDraft]]:
        """The workspace's analysis, or a fresh one of `source` (with its event)."""
        current = self._workspace.get("analysis")
        same = source is None or (
            source == self._workspace.get("source")
            and _folder(subfolder) == _folder((current or {}).get("subfolder"))
        )
        if current is not None and same:
            return Analysis.model_validate(current), []
        if source is None:
            return None, []
        step = self._analyse(source, subfolder)
        if "error" in step.outcome.response:
            raise ToolError(step.outcome.response["error"])
        if "needs" in step.outcome.response:  # which app of a monorepo: the user must say
            raise ToolError(step.outcome.response["summary"])
        return Analysis.model_validate(self._workspace["analysis"]), step.drafts

    # ---------------------------------------------------------------- tools

    def _analyse(self, source: str, subfolder: str | None = None) -> _Step:
        try:
            analysis = analyse_repository(
                source,
                workdir=self._settings.work_dir / self._session_id,
                local_root=self.local_root,
                subfolder=subfolder,
            )
        except ChooseApp as exc:
            # A question, not a failure: no error event; the user (or the model) names one.
            return _Step(
                ToolOutcome({"summary": exc.message, "apps": exc.apps, "needs": "subfolder"}),
                [],
                {},
            )
        except ToolError as exc:
            return _Step(
                ToolOutcome(
                    {
                        "error": exc.message,
                        "summary": f"I could not analyse {source}: {exc.message}",
                    }
                ),
                [self._error_event(exc.message)],
                {},
            )
        # What the user typed, not where it was found on this machine.
        analysis = analysis.model_copy(update={"source": source})
        data = analysis.model_dump(mode="json")
        self._workspace = {"source": source, "analysis": data}
        summary = describe_analysis(analysis)
        return _Step(
            ToolOutcome({"summary": summary, "analysis": _for_model(data)}),
            [{"type": "analysis", "turn_id": self._turn_id, "data": _for_people(data)}],
            {"workspace": self._workspace},
        )

    def _dockerfile(self, source: str | None, subfolder: str | None = None) -> _Step:
        try:
            analysis, drafts = self.analysis_for(source, subfolder)
        except ToolError as exc:
            return _Step(ToolOutcome({"error": exc.message, "summary": exc.message}), [], {})
        if analysis is None:
            message = (
                "Tell me which repository first: analyse it, or name it (write a Dockerfile for …)."
            )
            return _Step(ToolOutcome({"error": message, "summary": message}), [], {})
        if analysis.build == "buildpacks":
            message = (
                f"{analysis.name} is a {analysis.language} app ({analysis.framework}, "
                f"{analysis.build_tool}): I build it with Google Cloud's buildpacks, as "
                "`gcloud run deploy --source` does, so it needs no Dockerfile. Deploy it to Cloud "
                "Run when you are ready."
            )
            return _Step(ToolOutcome({"summary": message, "build": "buildpacks"}), drafts, {})
        if analysis.language == "other":
            message = f"{analysis.name} builds with its own {analysis.dockerfile}; I keep that one."
            return _Step(ToolOutcome({"summary": message}), drafts, {})
        files = generate_dockerfile(analysis)
        self._workspace = {
            **self._workspace,
            "dockerfile": files.dockerfile,
            "dockerignore": files.dockerignore,
        }
        written = self._write_dockerfile(analysis, files.dockerfile, files.dockerignore)
        note = (
            " The repository has a Dockerfile of its own, which the Cloud Run build uses; this "
            "one follows our conventions, for comparison."
            if files.existing_dockerfile
            else ""
        )
        if written:
            note += f" I wrote it to {written} in the app's folder; the build now uses it."
        drafts = [*drafts, *self._dockerfile_event(analysis, files.dockerfile, files, written)]
        # A re-analysis (after writing the file) starts the workspace afresh: keep the files.
        self._workspace = {
            **self._workspace,
            "dockerfile": files.dockerfile,
            "dockerignore": files.dockerignore,
        }
        show = (
            f"\n\n**Dockerfile** for `{analysis.name}` ({files.base_image}, port {files.port}):"
            f"\n\n```dockerfile\n{files.dockerfile.rstrip()}\n```\n\n**.dockerignore**:\n\n"
            f"```\n{files.dockerignore.rstrip()}\n```\n\n"
        )
        summary = (
            f"That is a production Dockerfile for {analysis.name}: a pinned slim base, "
            "dependencies installed before the code is copied (so they stay cached), a non-root "
            f"user, and the server listening on $PORT.{note}"
        )
        return _Step(
            ToolOutcome(
                {"summary": summary, "dockerfile": files.dockerfile, "shown_to_user": True},
                show=show,
            ),
            drafts,
            {"workspace": self._workspace},
        )

    def _write_dockerfile(self, analysis: Analysis, dockerfile: str, ignore: str) -> str | None:
        """Into the local folder, when local sources are on and it has no Dockerfile yet."""
        source = self._workspace.get("source")
        if self.local_root is None or not isinstance(source, str) or is_git_url(source):
            return None
        try:
            folder, _ = subfolder_of(resolve_local(source, self.local_root), analysis.subfolder)
        except ToolError:
            return None
        target = folder / "Dockerfile"
        if analysis.dockerfile or target.exists():
            return None  # never over the repository's own
        target.write_text(dockerfile)
        if not (folder / ".dockerignore").exists():
            (folder / ".dockerignore").write_text(ignore)
        return "Dockerfile"

    def _dockerfile_event(
        self, analysis: Analysis, dockerfile: str, files: Any, written: str | None
    ) -> list[EventDraft]:
        """An `analysis` event that shows the Dockerfile: written now, or offered to download."""
        offer = {
            "filename": "Dockerfile",
            "dockerfile": dockerfile,
            "dockerignore": files.dockerignore,
        }
        if written:
            step = self._analyse(str(self._workspace["source"]), analysis.subfolder)
            if "error" not in step.outcome.response:
                for draft in step.drafts:
                    draft["data"]["generated_dockerfile"] = {**offer, "written_to": written}
                return step.drafts
        data = _for_people(analysis.model_dump(mode="json"))
        data["generated_dockerfile"] = {**offer, "written_to": None}
        return [{"type": "analysis", "turn_id": self._turn_id, "data": data}]

    def _request_deployment(self, args: DeployArgs) -> _Step:
        from .deploy_access import cloud_run_refusal, forbidden_event
        from .deployments import request_deployment

        if args.target == "cloud_run":
            # The owner as the edge wrote it on the session, never anything the client says.
            refusal = cloud_run_refusal(self._settings.deploy_allowlist, self._session)
            if refusal is not None:
                return _Step(
                    ToolOutcome({"error": refusal, "summary": refusal, "code": "forbidden"}),
                    [forbidden_event(self._turn_id, refusal)],
                    {},
                )
        try:
            analysis, drafts = self.analysis_for(args.source, args.subfolder)
        except ToolError as exc:
            return _Step(ToolOutcome({"error": exc.message, "summary": exc.message}), [], {})
        assert analysis is not None
        try:
            if args.target == "local" and self._settings.local_deploy:
                # Said before the user confirms, not after: what this machine lacks.
                can_run_here(analysis)
            pending, event = request_deployment(self._settings, self._turn_id, args, analysis)
        except ToolError as exc:
            return _Step(ToolOutcome({"error": exc.message, "summary": exc.message}), drafts, {})
        summary = f"{event['message']} Reply **yes** to start it, or **no** to leave it."
        return _Step(
            ToolOutcome(
                {"status": "awaiting_confirmation", "summary": summary, **pending["confirm"]}
            ),
            [*drafts, event],
            {"workspace": self._workspace, "pending_deployment": pending},
        )

    def _error_event(self, message: str) -> EventDraft:
        return {
            "type": "error",
            "turn_id": self._turn_id,
            "code": "agent_failed",
            "message": message,
            "retryable": False,
        }


def describe_analysis(a: Analysis) -> str:
    version = f" {a.language_version}" if a.language_version else ""
    names = {"php": "PHP", "dotnet": ".NET", "node": "Node.js"}
    language = names.get(a.language, a.language.capitalize())
    manager = f"{a.package_manager}{', ' + a.lock_file if a.lock_file else ''}"
    lines = (
        [f"**{a.name}** is an app I don't build myself, but it has its own `{a.dockerfile}`."]
        if a.language == "other"
        else [f"**{a.name}** is a {language}{version} {a.framework} app ({manager})."]
    )
    port = f"port {a.port}" if a.port else "the port in `$PORT`"
    reads = " (it reads `PORT`)" if a.reads_port_env else ""
    lines.append(f"It starts with `{a.start_command}` and listens on {port}{reads}.")
    if a.env_vars:
        lines.append("It reads " + ", ".join(f"`{v.name}`" for v in a.env_vars[:8]) + ".")
    if a.dockerfile:
        lines.append(f"It has its own Dockerfile (`{a.dockerfile}`).")
    if a.build_reason:
        lines.append(a.build_reason)
    if a.subfolder:
        lines.append(f"It is the app in the `{a.subfolder}/` folder of the repository.")
    if a.other_apps:
        others = ", ".join(f"`{o.subfolder}/` ({o.framework})" for o in a.other_apps[:4])
        lines.append(f"Other apps in this repository: {others}.")
    if a.local_run:
        lines.append(a.local_run)
    if a.tests.paths or a.tests.command:
        command = f" (`{a.tests.command}`)" if a.tests.command else ""
        lines.append(f"Tests: {', '.join(a.tests.paths[:3]) or 'yes'}{command}.")
    lines.extend(f"Note: {w}" for w in a.warnings[:3])
    return " ".join(lines)


def _folder(subfolder: object) -> str | None:
    if not isinstance(subfolder, str):
        return None
    text = subfolder.strip().strip("/").removeprefix("./")
    return text or None


def _for_people(data: dict[str, Any]) -> dict[str, Any]:
    # Where the agent keeps its copy is nobody's business but the agent's.
    return {k: v for k, v in data.items() if k != "path"}


def _for_model(data: dict[str, Any]) -> dict[str, Any]:
    # The evidence is for people (the card); the model needs the findings.
    return {k: v for k, v in data.items() if k not in ("evidence", "path")}


def _call_key(name: str, args: BaseModel) -> str:
    canonical = json.dumps([name, args.model_dump(mode="json")], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
