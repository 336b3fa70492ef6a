"""Percentiles without numpy (nearest rank on the sorted samples)."""

import math
from collections.abc import Sequence


def percentile(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return float("nan")
    # Nearest rank: the smallest sample with at least q % of the samples at or below it.
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summary(values: Sequence[float], digits: int = 1) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "p50": round(percentile(ordered, 50), digits),
        "p95": round(percentile(ordered, 95), digits),
        "p99": round(percentile(ordered, 99), digits),
        "max": round(ordered[-1], digits),
        "mean": round(sum(ordered) / len(ordered), digits),
    }
