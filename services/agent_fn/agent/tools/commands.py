"""The command that starts an app, in one place for the analysis, the Dockerfile and local runs."""

from __future__ import annotations

import re
import shlex

from .analysis_model import Server

_SAFE_TOKEN = re.compile(r"[\w@%+=:,./$-]+")  # `$` kept unquoted so the shell expands $PORT


def start_argv(server: Server, target: str, *, port: str, host: str) -> list[str]:
    if server == "gunicorn":
        # One worker with threads: Cloud Run scales by instances, and a timeout of 0 lets
        # Cloud Run's own request timeout apply instead of gunicorn's 30 s.
        return [
            "gunicorn", "--bind", f"{host}:{port}", "--workers", "1", "--threads", "8",
            "--timeout", "0", target,
        ]  # fmt: skip
    if server == "uvicorn":
        return ["uvicorn", target, "--host", host, "--port", port]
    if server == "node":
        return ["node", target]
    if server == "npm":
        return ["npm", "start"]
    if server == "next":
        return ["next", "start", "-H", host, "-p", port]
    if server == "go":
        return ["go", "run", target]
    return ["python3", "-m", "http.server", port, "--bind", host, "--directory", target]


def to_shell(argv: list[str]) -> str:
    return " ".join(a if _SAFE_TOKEN.fullmatch(a) else shlex.quote(a) for a in argv)


def start_command(server: Server, target: str) -> str:
    """How the app is started in a container, with `$PORT` where the port goes."""
    return to_shell(start_argv(server, target, port="$PORT", host="0.0.0.0"))
