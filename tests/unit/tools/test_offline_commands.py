"""Offline mode understands the monorepo phrasings and git:// URLs."""

from __future__ import annotations

import pytest

from agent.model import ToolCall
from agent.offline import parse_command


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "deploy the backend folder of https://github.com/acme/shop locally",
            ToolCall(
                "request_deployment",
                {
                    "source": "https://github.com/acme/shop",
                    "target": "local",
                    "subfolder": "backend",
                },
            ),
        ),
        (
            "analyse the folder api of github.com/acme/shop",
            ToolCall("analyse_repository", {"source": "github.com/acme/shop", "subfolder": "api"}),
        ),
        (
            "analyse ./examples/mono folder frontend/",
            ToolCall("analyse_repository", {"source": "./examples/mono", "subfolder": "frontend"}),
        ),
        (
            "deploy ./shop (folder services/api) to cloud run project p-1",
            ToolCall(
                "request_deployment",
                {
                    "source": "./shop",
                    "target": "cloud_run",
                    "project": "p-1",
                    "subfolder": "services/api",
                },
            ),
        ),
        (
            "write a Dockerfile for ./shop --subfolder web",
            ToolCall("generate_dockerfile", {"source": "./shop", "subfolder": "web"}),
        ),
        (
            "deploy git://127.0.0.1:9418/x.git locally",
            ToolCall(
                "request_deployment", {"source": "git://127.0.0.1:9418/x.git", "target": "local"}
            ),
        ),
        (
            "analyse ./examples/hello-flask",
            ToolCall("analyse_repository", {"source": "./examples/hello-flask"}),
        ),
    ],
)
def test_offline_commands_with_subfolders(text: str, expected: ToolCall) -> None:
    assert parse_command(text) == expected
