"""The turn's part of a Cloud Run deployment: start the build, bind it to the record, return.

The build outlives the turn (agent/deployment_events.py follows it). Binding is one
transaction on the deployment record: the first build bound wins, so a retried turn that raced
an earlier attempt cancels its own second build instead of deploying twice. A retry that finds
the record started but no build bound looks the build up by its tag before starting one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.cloud import firestore
from pydantic import ValidationError

from deploychat.firestore_layout import turn_ref

from .event_store import Prepared, TurnLog
from .event_writes import EventDraft
from .gcp_clients import GcpClients
from .session_state import Confirmation
from .tools import Analysis, Cancelled, Progress, ToolError
from .tools.cloud_run_deploy import (
    BuildStarted,
    CloudRunTarget,
    cancel_build,
    find_build,
    start_cloud_run_build,
)

log = logging.getLogger(__name__)

SUBMITTED_PERCENT = 20


class CloudRunStart:
    def __init__(
        self,
        turn_log: TurnLog,
        confirm: Confirmation,
        analysis: dict[str, Any],
        clients: GcpClients,
        record_ref: Any,
        *,
        source_dir: Callable[[str], Path],
        on_progress: Callable[[Progress], None],
        should_cancel: Callable[[], bool],
        update: Callable[[str, int, str], EventDraft],
        finish: Callable[[str, str, str], None],
    ) -> None:
        self._log = turn_log
        self._confirm = confirm
        self._analysis = analysis
        self._clients = clients
        self._ref = record_ref
        self._source_dir = source_dir
        self._on_progress = on_progress
        self._should_cancel = should_cancel
        self._update = update
        self._finish = finish
        self._id = confirm.deployment_id
        self.app = confirm.app
        self._turn = turn_ref(turn_log.db, turn_log.session_id, turn_log.turn_id)

    def run(self, resume: bool) -> tuple[str, bool]:
        """The text for the user, and whether the turn was cancelled."""
        app = self.app
        try:
            target = CloudRunTarget.model_validate(
                self._confirm.model_dump(include={"project", "region", "service"})
            )
            analysis = Analysis.model_validate(self._analysis)
        except ValidationError as exc:
            message = f"the stored deployment is not usable ({exc}); ask me again"
            self._finish("failed", "failed", message)
            return f"The deployment of **{app}** failed: {message}", False
        started = self._adopt(target) if resume else None
        if started is None:
            try:
                started = start_cloud_run_build(
                    self._source_dir(self._confirm.source),
                    analysis,
                    target,
                    session_id=self._log.session_id,
                    deployment_id=self._id,
                    on_progress=self._on_progress,
                    should_cancel=self._should_cancel,
                    client=self._clients.builds,
                    storage_uploader=self._clients.uploader(target.project),
                    options=self._clients.build_options,
                )
            except Cancelled:
                self._finish("failed", "cancelled", "Cancelled before the build started.")
                return f"Stopped the deployment of **{app}** before its build started.", True
            except ToolError as exc:
                self._finish("failed", "failed", exc.message)
                return f"The deployment of **{app}** failed: {exc.message}", False
        try:
            winner = self._bind(started)
        except BaseException:
            # Nobody will ever follow this build: stop it rather than deploy unseen.
            cancel_build(self._clients.builds, target.project, target.region, started.build_id)
            raise
        if winner != started.build_id:
            log.warning(
                "deployment %s: build %s already bound; cancelling %s",
                self._id,
                winner,
                started.build_id,
            )
            cancel_build(self._clients.builds, target.project, target.region, started.build_id)
        if self._should_cancel():
            cancel_build(self._clients.builds, target.project, target.region, winner)
            return f"Stopping the build of **{app}**.", True
        logs = f" ([build logs]({started.log_url}))" if started.log_url else ""
        return (
            f"The deployment of **{app}** has started: Cloud Build is building the image and "
            f"deploying it to Cloud Run (build `{winner}`{logs}). Its progress shows here as it "
            "goes; it takes a few minutes, and you can keep chatting meanwhile.",
            False,
        )

    def _adopt(self, target: CloudRunTarget) -> BuildStarted | None:
        """The build an earlier attempt submitted and did not live to bind, if any."""
        build = find_build(self._clients.builds, target, self._id)
        if build is None:
            return None
        log.info("deployment %s: adopting build %s", self._id, build.id)
        return BuildStarted(
            build_id=build.id,
            log_url=build.log_url or None,
            image="",
            service=target.service_name,
            steps=[s.id for s in build.steps],
            port=0,
        )

    def _bind(self, started: BuildStarted) -> str:
        """Bind the build to the record (unless one is bound already); the bound build's id."""
        bound = {"id": started.build_id}

        def prepare(txn: Any, session: dict[str, Any], turn: dict[str, Any]) -> Prepared:
            snap = self._ref.get(transaction=txn)
            record = (snap.to_dict() or {}) if snap.exists else {}
            current = record.get("build_id")
            if current and current != started.build_id:
                bound["id"] = current
                return Prepared()
            drafts = []
            if not record.get("build_rank"):
                # Notifications may have been shown already (they bind the build themselves).
                drafts.append(
                    self._update(
                        "submitted",
                        SUBMITTED_PERCENT,
                        f"Build {started.build_id} started on Cloud Build. "
                        f"{started.description}".strip(),
                    )
                )
            fields: dict[str, Any] = {"build_id": started.build_id}
            if started.log_url:
                fields["build_log_url"] = started.log_url
            if started.image:
                fields["image"] = started.image
            if record.get("status") == "running":
                fields["status"] = "building"
            # On the turn too, so a cancel of the finished turn still means something (the
            # edge accepts cancels of finished turns that have a build running).
            running = {"running_deployments": firestore.ArrayUnion([self._id])}
            return Prepared(drafts, [("merge", self._ref, fields), ("merge", self._turn, running)])

        self._log.append([], {}, prepare=prepare)
        return bound["id"]
