"""Deployments: asked for, confirmed by the user, then run at most once.

A request stores a pending confirmation on the session (so it survives reconnects and reloads)
and shows it as a `deployment_update` at stage `awaiting_confirmation`. The user's "yes" turn
starts it: one transaction consumes the confirmation and creates the deployment's record, keyed
by the deployment id, so a redelivered or retried turn finds the record and never deploys
twice. A local deployment runs inside the turn: a retry that finds it still marked running knows
the attempt that ran it died, and reports it interrupted rather than starting it again. A Cloud
Run deployment is one Cloud Build build that outlives the turn (agent/cloud_run_start.py starts
it, agent/deployment_events.py follows it); a retry finds its build, or starts it.

Every `deployment_complete` carries an `outcome` (succeeded, failed, cancelled, declined), so a
declined or cancelled deployment is never shown as failed.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.cloud import firestore
from pydantic import ValidationError

from deploychat.firestore_layout import deployment_ref

from .cloud_run_start import CloudRunStart
from .deploy_access import cloud_run_refusal, forbidden_event
from .event_store import Prepared, TurnLog
from .event_writes import EventDraft
from .gcp_clients import GcpClients, gcp_clients
from .session_state import PendingDeployment
from .settings import AgentSettings
from .tool_specs import DeployArgs
from .tools import (
    Analysis,
    Cancelled,
    CloudRunTarget,
    DeployResult,
    Progress,
    ToolError,
    deploy_local,
)
from .tools.source import resolve_source

log = logging.getLogger(__name__)

_YES = re.compile(
    r"^\s*(?:y|yes|yep|yeah|sure|ok|okay|confirm(?:ed)?|go(?: ahead)?|do it|deploy(?: it)?|"
    r"yes,? (?:please|deploy(?: it)?|go ahead|do it)|please do|start(?: it)?)\s*[.!]*\s*$",
    re.I,
)
_NO = re.compile(
    r"^\s*(?:n|no|nope|cancel|stop|abort|don'?t|do not|no,? thanks?|not now|never ?mind)"
    r"\s*[.!]*\s*$",
    re.I,
)


def classify_reply(text: str) -> str | None:
    """'yes' or 'no' when the message answers a pending confirmation, else None."""
    if _YES.match(text):
        return "yes"
    if _NO.match(text):
        return "no"
    return None


def request_deployment(
    settings: AgentSettings, turn_id: str, args: DeployArgs, analysis: Analysis
) -> tuple[dict[str, Any], EventDraft]:
    """The pending confirmation to store on the session, and the event that shows it."""
    confirm: dict[str, Any] = {"source": args.source, "target": args.target, "app": analysis.name}
    if args.target == "local":
        if not settings.local_deploy:
            raise ToolError("Deploying to this machine is turned off here; deploy to Cloud Run.")
        where = "this machine (a local process, for a quick try)"
    else:
        project = args.project or settings.deploy_project
        if project is None:
            raise ToolError("Which Google Cloud project should it go to? Tell me its id.")
        service = args.service or _service_name(analysis.name)
        try:
            target = CloudRunTarget(
                project=project, region=args.region or settings.deploy_region, service=service
            )
        except ValidationError as exc:
            problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
            raise ToolError(f"That Cloud Run target is not valid ({problems}).") from None
        confirm.update(project=target.project, region=target.region, service=target.service)
        where = (
            f"Cloud Run service `{target.service}` in project `{target.project}`, "
            f"region `{target.region}`"
        )
    digest = hashlib.sha256(repr(sorted(confirm.items())).encode()).hexdigest()[:6]
    deployment_id = f"d-{turn_id}-{digest}"
    confirm["deployment_id"] = deployment_id
    message = f"Ready to deploy **{analysis.name}** ({args.source}) to {where}."
    pending = {
        "id": deployment_id,
        "requested_by": turn_id,
        "confirm": confirm,
        "analysis": analysis.model_dump(mode="json"),
    }
    event: EventDraft = {
        "type": "deployment_update",
        "turn_id": turn_id,
        "deployment_id": deployment_id,
        "stage": "awaiting_confirmation",
        "progress": 0,
        "message": message,
        "confirm": confirm,
    }
    return pending, event


@dataclass
class DeploymentOutcome:
    text: str
    cancelled: bool = False


class CancelPoll:
    """`should_cancel` for tools: reads the turn's cancel flag at most once per interval."""

    def __init__(
        self, turn_log: TurnLog, interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log = turn_log
        self._interval = interval_s
        self._clock = clock
        self._checked_at = float("-inf")
        self._cancelled = False

    def __call__(self) -> bool:
        now = self._clock()
        if not self._cancelled and now - self._checked_at >= self._interval:
            self._checked_at = now
            self._cancelled = self._log.cancel_requested()
        return self._cancelled


class DeploymentRunner:
    def __init__(
        self,
        settings: AgentSettings,
        turn_log: TurnLog,
        pending: PendingDeployment,
        source_dir: Callable[[str], Path],
        clients: GcpClients | None = None,
    ) -> None:
        self._settings = settings
        self._log = turn_log
        self._pending = pending
        self._id = pending.id
        self._confirm = pending.confirm
        self.app = pending.confirm.app
        self._source_dir = source_dir
        self._clients = clients
        self._ref = deployment_ref(turn_log.db, turn_log.session_id, self._id)
        self._cancel = CancelPoll(turn_log, settings.cancel_poll_s)
        self._percent = 0

    def decline(self) -> str:
        self._log.append(
            [self._complete("failed", "Not deployed: you declined.", outcome="declined")],
            {"deployment": self._id},
            session_update={"pending_deployment": firestore.DELETE_FIELD},
        )
        return "All right, I won't deploy it. Ask me again whenever you're ready."

    def run(self) -> DeploymentOutcome:
        state = self._start()
        app = self.app
        if state == "cancelled":
            return DeploymentOutcome("Cancelled before the deployment started.", cancelled=True)
        if state == "forbidden":
            return DeploymentOutcome(
                f"I did not deploy **{app}**: you may not deploy to Cloud Run."
            )
        if state == "interrupted":
            return DeploymentOutcome(
                f"The deployment of **{app}** was interrupted when the agent restarted, so I "
                "stopped it rather than run it twice. Ask me again to deploy it."
            )
        if state == "building":
            return DeploymentOutcome(
                f"The deployment of **{app}** has started on Cloud Build; its progress shows here."
            )
        if state not in ("start", "resume"):
            return DeploymentOutcome(f"The deployment of **{app}** has already been handled.")
        if self._confirm.target == "cloud_run":
            text, cancelled = self._cloud_run().run(resume=state == "resume")
            return DeploymentOutcome(text, cancelled=cancelled)
        try:
            result = self._deploy_local()
        except Cancelled:
            self._finish("failed", "Cancelled: the deployment was stopped.", outcome="cancelled")
            return DeploymentOutcome(f"Stopped the deployment of **{app}**.", cancelled=True)
        except ToolError as exc:
            self._finish("failed", exc.message)
            return DeploymentOutcome(f"The deployment of **{app}** failed: {exc.message}")
        self._finish("succeeded", f"{app} is running on this machine.", result=result)
        return DeploymentOutcome(f"**{app}** is running on this machine: {result.url}")

    # ---------------------------------------------------------------- steps

    def _start(self) -> str:
        state = {"kind": "gone"}
        turn_id = self._log.turn_id
        cloud = self._confirm.target == "cloud_run"

        def prepare(txn: Any, session: dict[str, Any], turn: dict[str, Any]) -> Prepared:
            snap = self._ref.get(transaction=txn)
            record = snap.to_dict() if snap.exists else None
            if record is None:
                current = session.get("pending_deployment") or {}
                if current.get("id") != self._id:
                    return Prepared()
                if turn.get("cancel_requested"):
                    state["kind"] = "cancelled"
                    return Prepared(
                        [self._complete("failed", "Cancelled before it started.", "cancelled")]
                    )
                refusal = cloud_run_refusal(self._settings.deploy_allowlist, session)
                if cloud and refusal is not None:
                    # Checked when it was asked for too; the allowlist may have changed since.
                    state["kind"] = "forbidden"
                    return Prepared(
                        [
                            forbidden_event(turn_id, refusal),
                            self._complete("failed", f"Not deployed: {refusal}"),
                        ]
                    )
                state["kind"] = "start"
                return Prepared(
                    [self._update("starting", 1, "Starting the deployment")],
                    [
                        (
                            "create",
                            self._ref,
                            {
                                **self._confirm.model_dump(exclude_none=True),
                                "status": "running",
                                "turn_id": turn_id,
                                "started_at": time.time(),
                            },
                        )
                    ],
                )
            if record.get("status") == "running" and record.get("turn_id") == turn_id:
                if cloud:
                    # The attempt that started it died before a build was bound: find the
                    # build it may have submitted, or submit it.
                    state["kind"] = "resume"
                    return Prepared()
                state["kind"] = "interrupted"
                message = "Interrupted: the agent restarted during the deployment."
                return Prepared(
                    [self._complete("failed", message)],
                    [("merge", self._ref, {"status": "failed", "message": message})],
                )
            state["kind"] = "building" if record.get("status") == "building" else "done"
            return Prepared()

        self._log.append(
            [],
            {"deployment": self._id},
            session_update={"pending_deployment": firestore.DELETE_FIELD},
            prepare=prepare,
        )
        return state["kind"]

    def _cloud_run(self) -> CloudRunStart:
        return CloudRunStart(
            self._log,
            self._confirm,
            self._pending.analysis,
            self._clients or gcp_clients(self._settings),
            self._ref,
            source_dir=self._source_dir,
            on_progress=self._on_progress,
            should_cancel=self._cancel,
            update=self._update,
            finish=lambda status, outcome, message: self._finish(status, message, outcome=outcome),
        )

    def _deploy_local(self) -> DeployResult:
        try:
            analysis = Analysis.model_validate(self._pending.analysis)
        except ValidationError as exc:
            raise ToolError(f"the stored analysis is not usable ({exc}); analyse it again") from exc
        return deploy_local(
            self._source_dir(self._confirm.source),
            analysis,
            state_dir=self._settings.deploy_state_dir,
            on_progress=self._on_progress,
            should_cancel=self._cancel,
            health_timeout_s=self._settings.local_health_timeout_s,
            deployment_id=self._id,
        )

    def _on_progress(self, progress: Progress) -> None:
        self._log.append([self._update(progress.stage, progress.percent, progress.message)], {})

    def _finish(
        self,
        status: str,
        message: str,
        *,
        outcome: str | None = None,
        result: DeployResult | None = None,
    ) -> None:
        outcome = outcome or status
        record: dict[str, Any] = {
            "status": outcome,
            "outcome": outcome,
            "message": message,
            "finished_at": time.time(),
        }
        if result is not None:
            record.update(url=result.url, kind=result.kind, pid=result.pid)
        self._log.append(
            [self._complete(status, message, outcome, result.url if result else None)],
            {},
            prepare=lambda txn, session, turn: Prepared(writes=[("merge", self._ref, record)]),
        )

    def _update(self, stage: str, percent: int, message: str) -> EventDraft:
        # The bar never goes back, whatever order the tool reports in.
        self._percent = max(self._percent, min(100, percent))
        return {
            "type": "deployment_update",
            "turn_id": self._log.turn_id,
            "deployment_id": self._id,
            "stage": stage,
            "progress": self._percent,
            "message": message,
        }

    def _complete(
        self, status: str, message: str, outcome: str | None = None, url: str | None = None
    ) -> EventDraft:
        draft: EventDraft = {
            "type": "deployment_complete",
            "turn_id": self._log.turn_id,
            "deployment_id": self._id,
            "status": status,
            "outcome": outcome or status,
            "message": message,
        }
        if url:
            draft["url"] = url
        return draft


def source_dir_for(settings: AgentSettings, session_id: str) -> Callable[[str], Path]:
    """Where a source is on disk when it is deployed: the path, or a fresh clone of the URL."""

    def locate(source: str) -> Path:
        # The same confinement as the analysis (issue: local folders only inside the workspace
        # root, and only when local sources are on; `..` and symlinks out refused).
        return resolve_source(
            source,
            workdir=settings.work_dir / session_id,
            clone_timeout_s=60,
            max_repo_bytes=200_000_000,
            local_root=settings.source_root if settings.local_sources else None,
        ).path

    return locate


def _service_name(name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "app"
    return slug if slug[0].isalpha() else f"app-{slug}"[:49]
