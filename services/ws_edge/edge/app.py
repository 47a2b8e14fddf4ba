"""The edge's Flask app: the chat page, the health check and the chat WebSocket."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, request, send_from_directory
from flask_sock import Sock

from deploychat.logging_setup import setup_logging
from deploychat.tracing import setup_tracing

from .connection import CLOSE_POLICY, Connection, EdgeServices, FrameSignal, InlineReader
from .settings import EdgeSettings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


def create_app(services: EdgeServices | None = None) -> Flask:
    services = services or EdgeServices(EdgeSettings())
    settings = services.settings
    setup_logging(settings)
    setup_tracing(settings, "ws_edge")

    app = Flask(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
    app.config["SOCK_SERVER_OPTIONS"] = {
        "max_message_size": settings.max_frame_bytes,
        "thread_class": InlineReader,
        "event_class": FrameSignal,
    }
    app.extensions["deploychat"] = services
    sock = Sock(app)

    @app.before_request
    def no_compression() -> None:
        # permessage-deflate keeps a zlib context per socket (hundreds of KB with a browser's
        # defaults); our frames are small JSON, so sockets are worth more than bytes here.
        if request.path == "/ws/chat":
            request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)

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

    @sock.route("/ws/chat")  # type: ignore[untyped-decorator]
    def chat(ws: Any) -> None:
        connection = Connection(ws, services)
        if not origin_allowed(request.headers.get("Origin"), request.host, settings):
            log.warning("refused origin %s", request.headers.get("Origin"))
            connection.close(CLOSE_POLICY, "origin not allowed")
            return
        connection.run()

    return app


def origin_allowed(origin: str | None, host: str, settings: EdgeSettings) -> bool:
    """Same-origin pages and listed origins; clients that send no Origin are not browsers."""
    if not origin:
        return True
    if origin in settings.allowed_origins or "*" in settings.allowed_origins:
        return True
    return urlsplit(origin).netloc == host
