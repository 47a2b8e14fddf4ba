"""The edge's Flask app: the chat page, its configuration, the user's sessions, the health
check and the chat WebSocket (served by flask-sock)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request, send_from_directory
from flask_sock import Sock

from deploychat.errors import TransientError
from deploychat.logging_setup import setup_logging
from deploychat.tracing import setup_tracing

from .connection import Connection
from .identity import Unauthorized
from .security import security_headers
from .services import EdgeServices
from .settings import EdgeSettings
from .transport import HandshakeRefused, check_handshake, prepare_environ, server_options, wrap

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
WEBSOCKET_PATHS = ("/ws/chat", "/ws/echo")


def create_app(services: EdgeServices | None = None) -> Flask:
    services = services or EdgeServices(EdgeSettings())
    settings = services.settings
    setup_logging(settings)
    setup_tracing(settings, "ws_edge")

    app = Flask(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
    app.extensions["deploychat"] = services
    app.config["SOCK_SERVER_OPTIONS"] = server_options(settings)
    sock = Sock(app)
    headers = security_headers(settings)

    @app.before_request
    def refuse_bad_handshakes() -> Response | None:
        # Before flask-sock upgrades: a request it should not upgrade gets a plain HTTP answer.
        if request.path not in WEBSOCKET_PATHS:
            return None
        if request.path == "/ws/echo" and not settings.echo_route:
            return plain(404, "not found")
        try:
            check_handshake(request.environ, settings)
        except HandshakeRefused as exc:
            if exc.status == 403:
                log.warning("refused a handshake from origin %s", request.headers.get("Origin"))
            return plain(exc.status, exc.message, exc.headers)
        if "gunicorn.socket" not in request.environ:
            return plain(500, "the chat WebSocket runs under gunicorn")
        prepare_environ(request.environ, settings, services.stalls)
        return None

    @app.after_request
    def add_headers(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        # The page's modules change with every deploy: browsers must ask (ETag) before reuse.
        if request.path == "/" or request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-cache"
        return response

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok", feeds=services.hub.feeds())

    @app.get("/")
    def index() -> Response:
        return send_from_directory(STATIC_DIR, "index.html")

    @app.get("/api/config")
    def config() -> Response:
        return jsonify(client_config(settings))

    @app.get("/api/sessions")
    def sessions() -> Response:
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        try:
            user = services.verifier.verify(token)
        except Unauthorized as exc:
            response = jsonify(error={"code": "unauthorized", "message": str(exc)})
            response.status_code = 401
            response.headers["WWW-Authenticate"] = 'Bearer realm="deploychat"'
            return response
        except TransientError as exc:
            response = jsonify(error={"code": "internal", "message": exc.message})
            response.status_code = 503
            return response
        response = jsonify(services.store.list_sessions(user.uid))
        response.headers["Cache-Control"] = "no-store"
        return response

    @sock.route("/ws/chat")  # type: ignore[untyped-decorator]
    def chat(ws: Any) -> None:
        Connection(wrap(ws, settings), services).run()

    @sock.route("/ws/echo")  # type: ignore[untyped-decorator]
    def echo(ws: Any) -> None:
        # Test-only (settings.echo_route): the chat's transport, with no chat on top.
        chat_socket = wrap(ws, settings)
        try:
            while chat_socket.connected:
                message = chat_socket.receive(timeout=settings.idle_timeout_s)
                if message is None:
                    chat_socket.close(1001, "idle")
                    break
                chat_socket.send_raw(message)
        except Exception:
            pass
        finally:
            chat_socket.wait_closed()

    return app


def client_config(settings: EdgeSettings) -> dict[str, Any]:
    """What the page and the CLI need to sign in and to label the agent."""
    emulator = settings.auth_emulator_host
    return {
        "auth": {
            "mode": settings.auth_mode,
            "api_key": settings.firebase_api_key or ("fake-api-key" if emulator else None),
            "auth_domain": settings.firebase_auth_domain,
            "project_id": settings.project_id,
            "emulator_url": f"http://{emulator}" if emulator else None,
        },
        "agent": {
            "mode": "model" if settings.agent_model else "offline",
            "model": settings.agent_model,
        },
    }


def plain(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = Response(message + "\n", status=status, mimetype="text/plain")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
