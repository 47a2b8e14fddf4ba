"""The flask-sock peer: a plain flask-sock app answering `ping` with `pong`, nothing else.

It runs under gunicorn's gevent worker with the edge's flask-sock options (no permessage-deflate
by default in simple-websocket, the same frame limit, no protocol pings): what the library
itself costs a socket, with none of the edge's work (sign-in, sessions, the Firestore listener,
the write guard). The edge divided by it is what the edge adds.

python -m bench.peers flasksock --port 9000 (gunicorn -k gevent -w 1 bench.flasksock_peer:app)
"""

from __future__ import annotations

import json
from typing import Any

import gevent
from flask import Flask
from flask_sock import Sock

# As the edge's gunicorn.conf.py: no record of each greenlet's spawning stack.
gevent.config.track_greenlet_tree = False

app = Flask(__name__)
app.config["SOCK_SERVER_OPTIONS"] = {
    "max_message_size": 64 * 1024,
    "receive_bytes": 4096,
    "ping_interval": None,
}
sock = Sock(app)


@sock.route("/")  # type: ignore[untyped-decorator]  # the bench client's bare dialect path
def chat(ws: Any) -> None:
    while True:
        message = ws.receive()
        obj = json.loads(message)
        if isinstance(obj, dict) and obj.get("type") == "ping":
            ws.send(json.dumps({"type": "pong", "ts": obj.get("ts")}, separators=(",", ":")))


@app.get("/healthz")
def health() -> str:
    return "ok\n"
