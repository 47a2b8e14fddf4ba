"""gunicorn's entry point (`edge.wsgi:app`), loaded after the gevent worker has patched."""

from __future__ import annotations


def _init_grpc_for_gevent() -> None:
    # gRPC (Pub/Sub, Firestore) blocks the whole gevent loop unless told to cooperate.
    try:
        from gevent import monkey
    except ImportError:
        return
    if monkey.is_module_patched("socket"):
        from grpc.experimental import gevent as grpc_gevent

        grpc_gevent.init_gevent()


_init_grpc_for_gevent()

from edge.app import create_app  # noqa: E402

app = create_app()
