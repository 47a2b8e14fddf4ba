"""Scenario 3: how fast one turn moves, and what the pipeline adds on top of the model.

Turns are sent one at a time, each on the next of many sessions, and timed at the client:
`chat` sent -> `ack` (the edge has published it), -> the first assistant piece, -> the final
message. Twice: with the fake model answering at once (all of it is the
pipeline), and with the fake model streaming like a real one (first token after 500 ms, 30
pieces over 3 s): the pipeline's overhead is the first piece's latency minus the model's 500 ms.

The fake model also notes when each turn's request reached it, which splits the first piece's
latency into before the model (edge, Pub/Sub push, the function's first transactions) and after
(the first piece's transaction, the listener, the edge). The Pub/Sub emulator's own push latency
(publish -> push request) is measured apart, with a subscription of its own.
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import threading
import time
import uuid
from typing import Any

from bench.clients import ClientPool
from bench.harness import INSTANT, STREAMING, BenchStack
from bench.plan import Plan
from bench.stats import close_codes, ms
from tests.support.fake_gemini import Reply

log = logging.getLogger("bench")


def run(bench: BenchStack, plan: Plan) -> dict[str, Any]:
    with ClientPool(1) as pool:
        pool.call(
            "open",
            {
                "host": "127.0.0.1",
                "port": bench.edge_port,
                "dialect": "ours",
                "count": plan.turn_sessions,
            },
        )
        # A session waits for its turn longer than the edge's 75 s idle limit: its socket
        # keeps the protocol's heartbeat, as a real client's does, or the edge closes it 1001.
        pool.call("heartbeat", {"interval_s": plan.heartbeat_s})
        instant = run_turns(bench, pool, INSTANT, plan.instant_turns, plan)
        streaming = run_turns(bench, pool, STREAMING, plan.streaming_turns, plan)
        status = pool.call("status", {})
        pool.call("heartbeat", {"interval_s": 0})
        pool.call("close_all", {})
    first_token = STREAMING.first_delay_s
    last_token = first_token + STREAMING.delay_s * (len(STREAMING.chunks) - 1)
    overhead = {
        "first_piece_p50_ms": _minus(streaming["first_piece_ms"]["p50"], first_token),
        "first_piece_p99_ms": _minus(streaming["first_piece_ms"]["p99"], first_token),
        "final_p50_ms": _minus(streaming["final_ms"]["p50"], last_token),
    }
    return {
        "instant": instant,
        "streaming": streaming,
        "streaming_model": {"first_token_s": first_token, "last_token_s": round(last_token, 2)},
        "overhead_on_model": overhead,
        # Closes the edge sent before close_all: any at all would leave a turn unfinished.
        "server_close_codes": close_codes(status),
        "pubsub_push_ms": push_latency(bench, plan.push_probes),
    }


def run_turns(
    bench: BenchStack, pool: ClientPool, reply: Reply, count: int, plan: Plan
) -> dict[str, Any]:
    bench.fake.default = reply
    longest = count * (2 * plan.turn_pause_s + plan.turn_timeout_s)
    try:
        results = pool.call(
            "turns",
            {
                "rate": 1 / plan.turn_pause_s,
                "duration_s": longest,
                "max_turns": count,
                "content": "How do I deploy a Flask app?",
                "timeout_s": plan.turn_timeout_s,
                "one_at_a_time": True,
            },
            timeout_s=longest + 60,
        )
    finally:
        bench.fake.default = INSTANT
    return summarize(bench, results, None)


def summarize(
    bench: BenchStack, results: list[dict[str, Any]], rate: float | None
) -> dict[str, Any]:
    """Latencies of the turns (None rate: one at a time), split at the model's request."""
    turns = [t for r in results for t in r["turns"]]
    unfinished = [t for r in results for t in r["unfinished"]]
    model_at = {c.marker: c.at for c in bench.fake.calls if c.marker}

    def times(key: str) -> list[float]:
        return [t[key] for t in turns if t[key] is not None]

    to_model = [model_at[t["turn_id"]] - t["sent_wall"] for t in turns if t["turn_id"] in model_at]
    after_model = [
        t["first_piece"] - (model_at[t["turn_id"]] - t["sent_wall"])
        for t in turns
        if t["turn_id"] in model_at and t["first_piece"] is not None
    ]
    return {
        "rate": rate,
        "sessions": sum(r["sessions"] for r in results),
        "started": sum(r["started"] for r in results),
        "completed": len(turns),
        "unfinished": len(unfinished),
        "skipped": sum(r["skipped"] for r in results),
        "errors": sum(1 for t in turns if t["errors"]),
        "ack_ms": ms(times("ack"), 50, 99),
        "first_piece_ms": ms(times("first_piece"), 50, 99),
        "final_ms": ms(times("final"), 50, 99),
        "end_ms": ms(times("end"), 50, 99),
        "to_model_ms": ms(to_model, 50, 99),
        "model_to_first_piece_ms": ms(after_model, 50, 99),
    }


def _minus(value_ms: float | None, seconds: float) -> float | None:
    return None if value_ms is None else round(value_ms - seconds * 1000, 1)


def push_latency(bench: BenchStack, probes: int) -> dict[str, Any]:
    """Publish -> push request, on the emulator, through a subscription of our own."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]
    from google.pubsub_v1 import types

    arrivals: dict[str, float] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            import json

            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
            arrivals[body["message"]["attributes"]["probe"]] = time.time()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    assert bench.stack is not None
    project = bench.stack.config.project
    name = f"bench-probe-{uuid.uuid4().hex[:8]}"
    publisher = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.002),
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
    )
    subscriber = pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(project, name)
    subscription = subscriber.subscription_path(project, name)
    publisher.create_topic(name=topic)
    port = server.server_address[1]
    subscriber.create_subscription(
        request=types.Subscription(
            name=subscription,
            topic=topic,
            push_config=types.PushConfig(push_endpoint=f"http://127.0.0.1:{port}/push"),
            enable_message_ordering=True,
        )
    )
    sent: dict[str, float] = {}
    publish_ms: list[float] = []
    try:
        for i in range(probes):
            probe = str(i)
            sent[probe] = time.time()
            publisher.publish(topic, b"probe", ordering_key=f"k{i}", probe=probe).result(10)
            publish_ms.append(time.time() - sent[probe])
            time.sleep(0.05)
        deadline = time.time() + 10
        while len(arrivals) < probes and time.time() < deadline:
            time.sleep(0.05)
    finally:
        with contextlib.suppress(Exception):
            subscriber.delete_subscription(subscription=subscription)
            publisher.delete_topic(topic=topic)
        server.shutdown()
    latencies = [arrivals[p] - sent[p] for p in sent if p in arrivals]
    return {
        "probes": probes,
        "delivered": len(latencies),
        "publish_ms": ms(publish_ms, 50, 99),
        **ms(latencies, 50, 99),
    }
