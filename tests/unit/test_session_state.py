from __future__ import annotations

from agent.session_state import PendingDeployment, Workspace, read_state


def test_valid_state_is_read() -> None:
    session = {
        "workspace": {"source": "./app", "analysis": {"name": "x"}, "future_field": 1},
        "pending_deployment": {
            "id": "d-1",
            "requested_by": "t1",
            "confirm": {"deployment_id": "d-1", "source": "./app", "target": "local", "app": "x"},
            "analysis": {},
        },
    }
    workspace = read_state(session, "workspace", Workspace)
    assert workspace is not None and workspace.source == "./app"
    pending = read_state(session, "pending_deployment", PendingDeployment)
    assert pending is not None and pending.confirm.target == "local"


def test_a_corrupt_field_is_treated_as_absent() -> None:
    session = {"pending_deployment": {"id": "d-1", "confirm": {"target": "the moon"}}}
    assert read_state(session, "pending_deployment", PendingDeployment) is None
    assert read_state({}, "workspace", Workspace) is None
