"""The edge's Flask app: the chat page, the health check and the chat WebSocket."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, abort, jsonify, request, send_from_directory

from deploychat.logging_setup import setup_logging
from deploychat.tracing import setup_tracing

from .connection import CLOSE_POLICY, Connection, EdgeServices, spawn
from .settings import EdgeSettings
from .websocket import HandshakeError, WebSocket, handshake

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


def create_app(services: EdgeServices | None = None) -> Flask:
    services = services or EdgeServices(EdgeSettings())
    settings = services.settings
    setup_logging(settings)
    setup_tracing(settings, "ws_edge")

    app = Flask(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
    app.extensions["deploychat"] = services

    @app.after_request
    def revalidate_static(response: Response) -> Response:
        # The page's modules change with every deploy: browsers must ask (ETag) before reuse.
        if request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-cache"
        return response

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok", feeds=services.hub.feeds())

    @app.get("/")
    def index() -> Response:
        response = send_from_directory(STATIC_DIR, "index.html")
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.route("/ws/chat", websocket=True)
    def chat() -> Response:
        ws = accept(request.environ, settings)
        connection = Connection(ws, services)
        if not origin_allowed(request.headers.get("Origin"), request.host, settings):
            log.warning("refused origin %s", request.headers.get("Origin"))
            connection.close(CLOSE_POLICY, "origin not allowed")
        spawn(connection.run)
        return SocketTaken()

    return app


def accept(environ: dict[str, Any], settings: EdgeSettings) -> WebSocket:
    """The WebSocket handshake, on a copy of the request's socket that outlives the request.

    The request's greenlet (gunicorn, Flask: a deep stack) ends as soon as the socket is open;
    the socket is then read by a greenlet of its own that starts with an empty stack and stays
    shallow (Connection.run). A greenlet keeps every page of stack it has ever touched, and the
    request's objects (WSGI environ, Flask context) die with it: about 8 KB a socket. gunicorn
    closes its copy of the socket when the request returns; this one stays open.
    """
    if "gunicorn.socket" not in environ:
        abort(500, "the chat WebSocket needs gunicorn")
    try:
        response = handshake(environ)
    except HandshakeError as exc:
        abort(exc.status, str(exc))
    sock = environ["gunicorn.socket"].dup()
    sock.sendall(response)
    return WebSocket(sock, settings.max_frame_bytes)


class SocketTaken(Response):
    """The answer to an upgraded request: nothing more is written, and gunicorn lets go."""

    def __call__(self, environ: Any, start_response: Any) -> Any:
        # gunicorn ends the request, and closes its copy of the socket, on StopIteration.
        raise StopIteration()


def origin_allowed(origin: str | None, host: str, settings: EdgeSettings) -> bool:
    """Same-origin pages and listed origins; clients that send no Origin are not browsers."""
    if not origin:
        return True
    if origin in settings.allowed_origins or "*" in settings.allowed_origins:
        return True
    return urlsplit(origin).netloc == host
