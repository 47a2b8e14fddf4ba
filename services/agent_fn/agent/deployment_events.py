"""Appends a Cloud Run deployment's progress to its session, from Cloud Build's notifications.

Runs outside any turn: one Firestore transaction reads the session's `last_seq`, the deployment
record and the turn that started it, and writes the new events after `last_seq` (with the
event store's rules), so they take the session's next seq even while a later turn is running.
The record keeps how far the build has been shown (`build_rank`) and whether it has ended: a
duplicate, a late or an out-of-order notification adds only the stages not shown yet, in order,
and nothing at all after the end. A notification for a build that is not one of ours (other
builds of the project publish to the same topic) is acknowledged and ignored.

A cancel of the turn that started the build, however late, cancels the build here, at the next
notification (and at once where the cancel is delivered as a message, see `cancel_turn_builds`).
While its build runs, the turn document lists the deployment in `running_deployments`, so the
edge can tell a finished turn that still has something to cancel.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from google.cloud import firestore

from deploychat.firestore_layout import DEPLOYMENTS, deployment_ref, session_ref, turn_ref

from .build_status import (
    TERMINAL,
    Build,
    failure_message,
    outcome,
    reached,
    service_url,
    stages,
)
from .event_writes import EventDraft, run_transaction, session_log, store_events
from .gcp_clients import GcpClients
from .settings import AgentSettings
from .tools.cloud_run_deploy import cancel_build

log = logging.getLogger(__name__)

FINISHED = ("succeeded", "failed", "cancelled")


@dataclass
class Applied:
    events: int = 0
    cancel: tuple[str, str] | None = None  # (project, region) of a build to cancel


class BuildEvents:
    def __init__(
        self,
        db: firestore.Client,
        settings: AgentSettings,
        clients: GcpClients,
        clock: Any = time.time,
    ) -> None:
        self._db = db
        self._settings = settings
        self._clients = clients
        self._clock = clock

    def handle(self, build: Build) -> int:
        """Store what `build` adds to its deployment; returns how many events were stored."""
        session_id, deployment_id = build.session_id, build.deployment_id
        if not session_id or not deployment_id:
            log.info("build %s is not a deploychat deployment; ignored", build.id)
            return 0
        applied: Applied = run_transaction(self._db, self._apply, build, session_id, deployment_id)
        if applied.cancel is not None:
            project, region = applied.cancel
            log.info("build %s: its turn was cancelled; cancelling the build", build.id)
            cancel_build(self._clients.builds, project, region, build.id)
        return applied.events

    def _apply(
        self, txn: firestore.Transaction, build: Build, session_id: str, deployment_id: str
    ) -> Applied:
        now = self._clock()
        session_doc = session_ref(self._db, session_id)
        record_doc = deployment_ref(self._db, session_id, deployment_id)
        found = {s.reference.path: s for s in txn.get_all([session_doc, record_doc])}
        session_snap, record_snap = found.get(session_doc.path), found.get(record_doc.path)
        if session_snap is None or not session_snap.exists:
            log.warning("build %s: session %s is gone; ignored", build.id, session_id)
            return Applied()
        if record_snap is None or not record_snap.exists:
            log.warning("build %s: no deployment %s; ignored", build.id, deployment_id)
            return Applied()
        record: dict[str, Any] = record_snap.to_dict() or {}
        bound = record.get("build_id")
        if record.get("target") != "cloud_run" or (bound and bound != build.id):
            # A second build for one deployment lost the race to a first (a retried turn).
            log.warning("build %s is not the build of %s; ignored", build.id, deployment_id)
            return Applied()
        if record.get("status") in FINISHED:
            return Applied()
        turn_id = str(record.get("turn_id", ""))
        turn = (
            next(iter(txn.get_all([turn_ref(self._db, session_id, turn_id)])), None)
            if turn_id
            else None
        )
        cancel_asked = bool(
            turn is not None and turn.exists and (turn.to_dict() or {}).get("cancel_requested")
        )
        shown = int(record.get("build_rank", 0))
        rank = reached(build)
        end = outcome(build)
        drafts: list[EventDraft] = [
            self._update(turn_id, deployment_id, s.stage, s.percent, s.message)
            for s in stages(build)
            if shown < s.rank <= rank
        ]
        update: dict[str, Any] = {"build_id": build.id, "build_status": build.status}
        if rank > shown:
            update["build_rank"] = rank
        if end is not None:
            url = service_url(build) if end == "succeeded" else None
            message = self._end_message(record, build, end, url)
            complete: EventDraft = {
                "type": "deployment_complete",
                "turn_id": turn_id,
                "deployment_id": deployment_id,
                "status": "succeeded" if end == "succeeded" else "failed",
                "outcome": end,
                "message": message,
            }
            if url:
                complete["url"] = url
            drafts.append(complete)
            update.update(status=end, outcome=end, message=message, finished_at=now)
            if turn is not None and turn.exists:
                done = {"running_deployments": firestore.ArrayRemove([deployment_id])}
                txn.set(turn.reference, done, merge=True)
            if url:
                update["url"] = url
        elif record.get("status") == "running":
            update["status"] = "building"
        if drafts:
            session = session_snap.to_dict() or {}
            tail: list[dict[str, Any]] = []
            seq = store_events(
                txn,
                self._db,
                session_id,
                int(session.get("last_seq", 0)),
                drafts,
                now,
                self._settings.session_ttl_days * 86400,
                tail,
            )
            txn.update(session_doc, {**session_log(seq, tail), "updated_at": now})
        txn.set(record_doc, update, merge=True)
        cancel = None
        if cancel_asked and build.status not in TERMINAL:
            cancel = (str(record.get("project", "")), str(record.get("region", "")))
        return Applied(len(drafts), cancel)

    @staticmethod
    def _end_message(record: dict[str, Any], build: Build, end: str, url: str | None) -> str:
        app = record.get("app") or record.get("service") or "The app"
        if end == "succeeded":
            where = f" at {url}" if url else ""
            return f"{app} is running on Cloud Run{where}."
        if end == "cancelled":
            return f"Cancelled: Cloud Build build {build.id} was stopped."
        return failure_message(build)

    @staticmethod
    def _update(
        turn_id: str, deployment_id: str, stage: str, percent: int, message: str
    ) -> EventDraft:
        return {
            "type": "deployment_update",
            "turn_id": turn_id,
            "deployment_id": deployment_id,
            "stage": stage,
            "progress": percent,
            "message": message,
        }


def cancel_turn_builds(
    db: firestore.Client, clients: GcpClients, session_id: str, turn_id: str
) -> int:
    """Cancel the Cloud Builds still running for deployments the turn started; how many.

    Their CANCELLED notifications then end the deployments in the session, as any end does.
    """
    records = (
        session_ref(db, session_id)
        .collection(DEPLOYMENTS)
        .where(filter=firestore.FieldFilter("turn_id", "==", turn_id))
        .stream()
    )
    cancelled = 0
    for snap in records:
        record = snap.to_dict() or {}
        build_id = record.get("build_id")
        if record.get("status") in FINISHED or not build_id:
            continue
        if cancel_build(clients.builds, record["project"], record["region"], build_id):
            cancelled += 1
    return cancelled
