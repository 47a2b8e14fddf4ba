"""Logging set up once per process: Cloud Logging JSON on Google Cloud, plain text locally."""

from __future__ import annotations

import logging
import sys

from deploychat.settings import CommonSettings

_configured = False


def setup_logging(settings: CommonSettings) -> None:
    global _configured
    if _configured:
        return
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and settings.running_on is not None
    )
    handler: logging.Handler
    if use_json:
        # Structured JSON on stdout: Cloud Run's and Functions' agents turn it into LogEntries,
        # with severity, trace and labels, without an API call per line.
        from google.cloud.logging.handlers import StructuredLogHandler

        handler = StructuredLogHandler(  # type: ignore[no-untyped-call]
            project_id=settings.project_id, stream=sys.stdout
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # Chatty at INFO, and nothing we act on.
    for noisy in ("urllib3", "google.auth", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True
