"""A tiny HTTP balancer: the one push endpoint in front of several function instances.

Cloud Run spreads Pub/Sub's pushes over a service's instances; locally the push subscription
points here, and each request goes to the next instance in turn. An instance that refuses the
connection (dead, restarting) is skipped; one that dies mid-request answers 502, as Cloud Run
does, so Pub/Sub delivers the message again.

For fault tests it can also swallow a turn's redeliveries (`POST /_balancer/drop?turn_id=X`):
a message of that turn already seen once is answered 200 without being forwarded, as if the
instance that got it had acknowledged it and died, so Pub/Sub never delivers it again.

Run: python -m devstack.balancer --port P --upstream 127.0.0.1:P1 --upstream 127.0.0.1:P2
"""

from __future__ import annotations

import argparse
import base64
import http.client
import itertools
import json
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Hop-by-hop headers are not forwarded (RFC 9110 section 7.6.1).
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host"}


class Balancer:
    def __init__(self, upstreams: list[str], timeout_s: float = 900.0) -> None:
        self.upstreams = upstreams
        self._next = itertools.cycle(range(len(upstreams)))
        self._lock = threading.Lock()
        self.timeout_s = timeout_s
        self.sent: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.dropped = 0
        self._drop_turns: set[str] = set()
        self._seen: dict[str, str] = {}  # Pub/Sub message id -> turn id

    def pick(self) -> list[str]:
        """The upstreams in the order to try them for one request."""
        with self._lock:
            first = next(self._next)
        n = len(self.upstreams)
        return [self.upstreams[(first + i) % n] for i in range(n)]

    def should_drop(self, body: bytes) -> bool:
        message_id, turn_id = _ids(body)
        if message_id is None:
            return False
        with self._lock:
            seen = message_id in self._seen
            if turn_id is not None:
                self._seen.setdefault(message_id, turn_id)
            if seen and self._seen[message_id] in self._drop_turns:
                self.dropped += 1
                return True
        return False

    def drop(self, turn_id: str) -> None:
        with self._lock:
            self._drop_turns.add(turn_id)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"sent": dict(self.sent), "failed": dict(self.failed), "dropped": self.dropped}


def _ids(body: bytes) -> tuple[str | None, str | None]:
    try:
        message = json.loads(body).get("message") or {}
        attributes = message.get("attributes") or {}
        turn_id = attributes.get("turn_id")
        if turn_id is None and message.get("data"):
            turn_id = json.loads(base64.b64decode(message["data"])).get("turn_id")
        return message.get("messageId") or message.get("message_id"), turn_id
    except (ValueError, AttributeError, TypeError):
        return None, None


def make_handler(balancer: Balancer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per push would drown the stack's logs

        def _reply(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.startswith("/_balancer/stats"):
                self._reply(200, json.dumps(balancer.stats()).encode(), "application/json")
            else:
                self._forward(b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path.startswith("/_balancer/drop"):
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                for turn_id in query.get("turn_id", []):
                    balancer.drop(turn_id)
                self._reply(200, b"ok\n")
                return
            if balancer.should_drop(body):
                self._reply(200, b"dropped\n")
                return
            self._forward(body)

        def _forward(self, body: bytes) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            for upstream in balancer.pick():
                host, port = upstream.rsplit(":", 1)
                conn = http.client.HTTPConnection(host, int(port), timeout=balancer.timeout_s)
                try:
                    try:
                        conn.connect()
                    except OSError:
                        with balancer._lock:
                            balancer.failed[upstream] += 1
                        continue  # not listening: the next instance takes it
                    with balancer._lock:
                        balancer.sent[upstream] += 1
                    try:
                        conn.request(self.command, self.path, body=body, headers=headers)
                        response = conn.getresponse()
                        data = response.read()
                    except (OSError, http.client.HTTPException):
                        # Died with the request: Pub/Sub must deliver it again.
                        self._reply(502, b"upstream died\n")
                        return
                    self._reply(
                        response.status,
                        data,
                        response.getheader("Content-Type") or "text/plain",
                    )
                    return
                finally:
                    conn.close()
            self._reply(503, b"no instance is up\n")

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # Pub/Sub pushes in bursts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", action="append", required=True)
    args = parser.parse_args()
    Server(("127.0.0.1", args.port), make_handler(Balancer(args.upstream))).serve_forever()


if __name__ == "__main__":
    main()
