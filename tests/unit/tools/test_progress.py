from __future__ import annotations

import pytest

from agent.tools import Cancelled, Progress, ProgressReporter


def test_percent_never_goes_back_and_is_clamped() -> None:
    seen: list[Progress] = []
    reporter = ProgressReporter(seen.append, lambda: False, min_interval_s=0)
    for stage, percent in [("a", 10), ("a", 5), ("b", 150), ("c", -3)]:
        reporter.report(stage, percent, stage)
    assert [(p.stage, p.percent) for p in seen] == [("a", 10), ("b", 100), ("c", 100)]


def test_repeats_within_a_stage_are_thinned_out() -> None:
    now = [0.0]
    seen: list[Progress] = []
    reporter = ProgressReporter(seen.append, lambda: False, min_interval_s=2, clock=lambda: now[0])
    reporter.report("installing", 10, "start")
    reporter.report("installing", 10, "start")  # nothing new
    now[0] = 1.0
    reporter.report("installing", 12, "tick")  # too soon
    now[0] = 2.5
    reporter.report("installing", 14, "tick")
    reporter.report("starting", 70, "go")  # a new stage always gets through
    assert [(p.stage, p.percent) for p in seen] == [
        ("installing", 10),
        ("installing", 14),
        ("starting", 70),
    ]


def test_check_cancel() -> None:
    flag = [False]
    reporter = ProgressReporter(lambda p: None, lambda: flag[0])
    reporter.check_cancel()
    flag[0] = True
    with pytest.raises(Cancelled):
        reporter.check_cancel()


def test_progress_model_bounds() -> None:
    with pytest.raises(ValueError):
        Progress(stage="x", percent=101, message="")
