"""gunicorn for the edge: one gevent worker holds thousands of sockets on few OS threads."""

from __future__ import annotations

import gc
import signal
from typing import Any

import gevent

from edge.settings import EdgeSettings

_settings = EdgeSettings()

# gevent records, for debugging, the stack that spawned each greenlet: a list of frames kept
# for the greenlet's life, about 1 KB for each socket's greenlet. Not worth it here.
gevent.config.track_greenlet_tree = False

bind = f"0.0.0.0:{_settings.port}"
worker_class = "gevent"
workers = 1
# Requests handled at once. An open chat socket is not one: its request ends with the handshake
# and the socket lives on in a greenlet of its own (edge/app.py), so gunicorn neither counts
# nor waits for sockets; the drain below closes them.
worker_connections = 20000
# Sockets live for up to an hour; the arbiter's timeout only checks the worker is alive.
timeout = 60
graceful_timeout = 15
keepalive = 75
accesslog = None
loglevel = "warning"


def post_worker_init(worker: Any) -> None:
    # On SIGTERM (Cloud Run scaling in, a deploy) tell every socket to reconnect at once
    # (1012) before the worker stops accepting, instead of dropping them at the graceful timeout.
    original = worker.handle_exit
    services = worker.wsgi.extensions.get("deploychat")
    if services is not None:
        # The listener's process starts with the worker, not with its first session.
        services.store.listener.start()
    # What the worker has built so far (modules, the app, its clients) lives as long as it
    # does: out of the collector's full passes, which walked it all each time (about 70 ms
    # for the edge's imports alone, a pause every socket's ping waited behind).
    gc.freeze()

    def handle_exit(sig: int, frame: Any) -> None:
        import gevent

        def drain() -> None:
            if services is not None:
                closed = services.hub.drain(1012, "service restart")
                worker.log.info("drained %d sockets", closed)
                # Let the closing handshakes finish (they are bounded by close_timeout_s).
                services.hub.wait_empty(services.settings.close_timeout_s + 1.0)

        worker.deploychat_drain = gevent.spawn(drain)
        original(sig, frame)

    signal.signal(signal.SIGTERM, handle_exit)


def worker_exit(server: Any, worker: Any) -> None:
    # gunicorn waits for no socket (see worker_connections): let the 1012s go out first.
    drain = getattr(worker, "deploychat_drain", None)
    if drain is not None:
        drain.join(graceful_timeout)
