"""Exact per-frame latency quantiles of a window, from the receivers' /latencies.

Each receiver keeps every recent frame's own latency (capture to received,
capture to served) in a bounded log. At the end of a window the bench reads
it and takes the quantiles over the frames captured inside the window:
nearest rank, so each figure is the latency of a real frame, no bucket
interpolation. A log that overflowed inside the window is flagged, never
silently used as a subset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

METHOD = "exact: nearest rank over every frame captured in the window"
QUANTILES = (0.5, 0.95, 0.99)


def quantile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank `q` quantile (0..1): the smallest value with at least q of them <= it."""
    if not 0 <= q <= 1:
        raise ValueError(f"quantile {q} is outside [0, 1]")
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def window(body: Mapping[str, Any], start_ns: int, end_ns: int) -> dict[str, Any]:
    """p50/p95/p99 in ms of the frames of a /latencies answer captured in [start_ns, end_ns].

    `overflow` is True when the log lost frames that may have been captured in
    the window (its oldest frame still held came after the window began).
    """
    captured, seconds = body["captured_ns"], body["seconds"]
    inside = [s * 1000 for c, s in zip(captured, seconds, strict=True) if start_ns <= c <= end_ns]
    lost = body.get("lost", 0) > 0
    overflow = lost and (not captured or captured[0] > start_ns)
    figures: dict[str, Any] = {f"p{round(q * 100)}": quantile(inside, q) for q in QUANTILES}
    return {**figures, "frames": len(inside), "method": METHOD, "overflow": overflow}
