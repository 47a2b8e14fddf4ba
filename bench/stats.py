"""Percentiles and other small arithmetic shared by the scenarios."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (nearest rank), or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ms(values: Sequence[float], *ps: float) -> dict[str, float | None]:
    """Percentiles of durations in seconds, as milliseconds: {"p50": ..., "p99": ...}."""
    out: dict[str, float | None] = {}
    for p in ps:
        value = percentile(values, p)
        out[f"p{p:g}"] = None if value is None else round(value * 1000, 1)
    return out


def split(total: int, parts: int) -> list[int]:
    """`total` shared as evenly as possible among `parts`."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def close_codes(statuses: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """The close codes the server sent, summed over the client processes' `status` answers."""
    codes: dict[str, int] = {}
    for status in statuses:
        for code, n in status["close_codes"].items():
            codes[str(code)] = codes.get(str(code), 0) + n
    return codes
