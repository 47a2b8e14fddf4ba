"""A plain flask-sock echo server with the edge's frame limit: the reference that the edge's own
echo route (`DEPLOYCHAT_ECHO_ROUTE=true`) is compared with. Test-only; nothing imports it.

    gunicorn -k gevent -b 127.0.0.1:PORT conformance.echo_app:app
"""

from __future__ import annotations

from flask import Flask
from flask_sock import Sock
from simple_websocket import Server

MAX_MESSAGE_BYTES = 64 * 1024

app = Flask(__name__)
app.config["SOCK_SERVER_OPTIONS"] = {"max_message_size": MAX_MESSAGE_BYTES}
sock = Sock(app)


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@sock.route("/ws/echo")  # type: ignore[untyped-decorator]
def echo(ws: Server) -> None:
    while True:
        ws.send(ws.receive())
