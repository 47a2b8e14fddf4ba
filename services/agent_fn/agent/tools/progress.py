"""Progress reports that only move forward, and the cancel check tools run between steps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from .errors import Cancelled


class Progress(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: str
    percent: Annotated[int, Field(ge=0, le=100)]
    message: str


ProgressCallback = Callable[[Progress], None]
CancelCheck = Callable[[], bool]


class ProgressReporter:
    """Clamps percentages so the bar never goes back, and thins out repeats.

    Each report becomes a stored session event, so a loop that reports on every poll would
    flood the session: within one stage, a report that changes nothing, or comes sooner than
    `min_interval_s` after the last one, is dropped. A new stage is always reported.
    """

    def __init__(
        self,
        on_progress: ProgressCallback,
        should_cancel: CancelCheck,
        *,
        min_interval_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_progress = on_progress
        self._should_cancel = should_cancel
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._percent = 0
        self._last: Progress | None = None
        self._last_at = 0.0

    @property
    def percent(self) -> int:
        return self._percent

    def report(self, stage: str, percent: int, message: str) -> None:
        self._percent = max(self._percent, min(100, max(0, int(percent))))
        progress = Progress(stage=stage, percent=self._percent, message=message)
        now = self._clock()
        last = self._last
        if last is not None and last.stage == stage:
            if last.percent == progress.percent and last.message == message:
                return
            if now - self._last_at < self._min_interval_s:
                return
        self._last = progress
        self._last_at = now
        self._on_progress(progress)

    def cancel_requested(self) -> bool:
        return self._should_cancel()

    def check_cancel(self) -> None:
        if self._should_cancel():
            raise Cancelled("cancelled")
