"""What a finished deployment reports, wherever it ran."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class DeployResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "cloud_run"]
    url: str
    port: int  # local: where it listens on 127.0.0.1; Cloud Run: the container port
    deployment_id: str | None = None
    pid: int | None = None  # local: the process group leader, for stop_local
    log_path: str | None = None  # local: the app's stdout and stderr
    image: str | None = None  # Cloud Run: the image deployed, by digest when known
    service: str | None = None  # Cloud Run: projects/<p>/locations/<r>/services/<s>
    build_id: str | None = None
    build_log_url: str | None = None
