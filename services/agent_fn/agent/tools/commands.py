"""The command that starts an app, in one place for the analysis, the Dockerfile and local runs."""

from __future__ import annotations

import re
import shlex

from .analysis_model import Server

_SAFE_TOKEN = re.compile(r"[\w@%+=:,./$-]+")  # `$` kept unquoted so the shell expands $PORT


def start_argv(
    server: Server, target: str, *, port: str, host: str, factory: bool = False
) -> list[str]:
    if server == "gunicorn":
        # One worker with threads: Cloud Run scales by instances, and a timeout of 0 lets
        # Cloud Run's own request timeout apply instead of gunicorn's 30 s.
        return [
            "gunicorn", "--bind", f"{host}:{port}", "--workers", "1", "--threads", "8",
            "--timeout", "0", target,
        ]  # fmt: skip
    if server == "uvicorn":
        return [
            "uvicorn",
            target,
            *(["--factory"] if factory else []),
            "--host",
            host,
            "--port",
            port,
        ]
    if server == "streamlit":
        return [
            "streamlit", "run", target, "--server.port", port, "--server.address", host,
            "--server.headless", "true",
        ]  # fmt: skip
    if server == "python":
        # Gradio reads its address from GRADIO_SERVER_NAME and GRADIO_SERVER_PORT.
        return ["python", target]
    if server == "spa":
        return ["nginx", "-g", "daemon off;"]
    if server == "java":
        return ["java", "-jar", f"{target}/app.jar"]
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


def start_command(server: Server, target: str, *, factory: bool = False) -> str:
    """How the app is started in a container, with `$PORT` where the port goes."""
    if server == "spa":
        return f"nginx serving {target}/ (unknown paths get index.html)"
    if server == "buildpack":
        return "chosen by the buildpack"
    return to_shell(start_argv(server, target, port="$PORT", host="0.0.0.0", factory=factory))
