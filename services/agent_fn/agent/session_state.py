"""What the agent keeps on the session document besides the event log, validated on read.

A document that does not fit (written by a newer or broken version) is logged and treated as
absent: the turn goes on, without the workspace or the confirmation it cannot trust.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

log = logging.getLogger(__name__)


class _State(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Workspace(_State):
    """The repository the session works on: its analysis and generated files."""

    source: str | None = None
    analysis: dict[str, Any] | None = None
    dockerfile: str | None = None
    dockerignore: str | None = None


class Confirmation(_State):
    """What the user is asked to confirm (shown in the `awaiting_confirmation` event)."""

    deployment_id: str
    source: str
    target: Literal["local", "cloud_run"]
    app: str
    project: str | None = None
    region: str | None = None
    service: str | None = None


class PendingDeployment(_State):
    """A deployment the user was asked to confirm."""

    id: str
    requested_by: str
    confirm: Confirmation
    analysis: dict[str, Any]


def read_state[M: _State](session: dict[str, Any], key: str, model: type[M]) -> M | None:
    raw = session.get(key)
    if raw is None:
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        log.error("session field %s is not valid, ignoring it: %s", key, exc)
        return None
