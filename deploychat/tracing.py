"""Traces across the pipeline with OpenTelemetry, exported to Cloud Trace on Google Cloud.

The edge starts a span for each chat it accepts and carries its context to the function in the
Pub/Sub message's attributes (W3C `traceparent`); the function continues the same trace for the
turn, its model steps, tools and deployment. google-cloud-logging stamps log entries with the
current span, so Cloud Logging shows each line in its trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from deploychat.settings import CommonSettings

log = logging.getLogger(__name__)

_provider: TracerProvider | None = None


def setup_tracing(
    settings: CommonSettings, service: str, exporter: SpanExporter | None = None
) -> None:
    """Once per process. Without an exporter the API's no-op tracer stays: spans cost nothing."""
    global _provider
    if _provider is not None:
        return
    if exporter is None:
        exporter = _exporter(settings)
    if exporter is None:
        return
    _provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
    )
    _provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(_provider)


def _exporter(settings: CommonSettings) -> SpanExporter | None:
    choice = settings.trace_exporter
    if choice == "auto":
        choice = "gcp" if settings.running_on else "none"
    if choice == "console":
        return ConsoleSpanExporter()
    if choice == "gcp":
        from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter

        return CloudTraceSpanExporter(project_id=settings.project_id)  # type: ignore[no-untyped-call]
    return None


def flush(timeout_ms: int = 2000) -> None:
    """Send what is buffered: a function's CPU may be throttled once it has answered."""
    if _provider is not None:
        _provider.force_flush(timeout_ms)


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def inject(carrier: MutableMapping[str, str]) -> None:
    """Write the current trace context into message attributes."""
    propagate.inject(carrier)


def extract(carrier: Mapping[str, str]) -> Context:
    """The trace context a message carries (an empty one if it carries none)."""
    return propagate.extract(dict(carrier))
