"""A camera's figures, counted when they happen: frames published (one rate meter, also shown
on the frame), frames dropped by stage, open viewers, and the recent capture-to-served
latencies, for /stats and Prometheus. Nothing here reads Prometheus back. Each frame's own
latency, received and served, is also kept in a bounded `LatencyLog` for `/latencies`.

Once closed (the camera forgotten, its series removed) nothing more is counted, so no
series comes back.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from framewire.metrics import LatencyLog, RateMeter, ReceiverMetrics
from framewire.variants import EncodeKey, key_label

RING = 300  # latency samples kept per camera for /stats
LATENCY_WINDOW = 5.0  # seconds of served latencies behind p50 and p95
FPS_WINDOW = 2.0  # seconds of published frames behind the fps figure
DROP_STAGES = ("receive", "stale", "process")
LATENCY_STAGES = ("received", "served")  # each frame's own latency, kept for /latencies


def percentile(ordered: list[float], q: float) -> float:
    """The `q` quantile (0..1) of sorted, non-empty `ordered`, linearly interpolated."""
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class Figures:
    """One camera's counts, rates and latencies, and its series in Prometheus."""

    def __init__(self, camera: str, metrics: ReceiverMetrics, transport: str) -> None:
        self.metrics = metrics
        self.labels = (camera, transport)
        self.latency_logs = {stage: LatencyLog() for stage in LATENCY_STAGES}
        self.viewers = 0
        self.closed = False
        self._lock = threading.Lock()
        self._published = RateMeter(FPS_WINDOW)
        self._latencies: deque[tuple[float, float]] = deque(maxlen=RING)  # (monotonic, ms)
        self._drops = dict.fromkeys(DROP_STAGES, 0)
        self._measured = 0  # the version whose served latency was recorded
        metrics.viewers.labels(*self.labels).set(0)

    def published(self, at: float) -> None:
        """A frame was published at monotonic time `at`."""
        self._published.tick(at)

    def fps(self, now: float | None = None) -> float:
        """Frames published per second over the last FPS_WINDOW seconds."""
        return self._published.rate(now)

    def count_drop(self, stage: str, count: int = 1) -> None:
        """Count `count` frames replaced unused at `stage` (`receive`, `stale` or `process`)."""
        with self._lock:
            if self.closed:
                return
            self._drops[stage] += count
            self.metrics.frames_dropped.labels(*self.labels, stage).inc(count)

    def viewer(self, change: int) -> None:
        """A viewer came (+1) or left (-1)."""
        with self._lock:
            if self.closed:
                return
            self.viewers += change
            self.metrics.viewers.labels(*self.labels).inc(change)

    def encoded(self, key: EncodeKey, path: str, reason: str) -> None:
        """A viewer encode of `key` ran, by `path` (`splice`, `full`) for `reason`."""
        with self._lock:
            if self.closed:
                return
            self.metrics.viewer_encodes.labels(*self.labels, key_label(key)).inc()
            self.metrics.viewer_encode_path.labels(*self.labels, path, reason).inc()

    def served(self, version: int, captured_ns: int) -> None:
        """Frame `version` was served: its latency is recorded once, whichever key came first."""
        with self._lock:
            if self._measured == version:
                return
            self._measured = version
            latency = max(0.0, (time.time_ns() - captured_ns) / 1e9)  # clock skew
            self._latencies.append((time.monotonic(), latency * 1000))
            self.latency_logs["served"].add(captured_ns, latency)
            if not self.closed:
                self.metrics.frame_latency.labels(*self.labels, "served").observe(latency)

    def served_latency_ms(self) -> float | None:
        """The latest capture-to-served latency, None when nothing was served lately."""
        with self._lock:
            if not self._latencies:
                return None
            at, ms = self._latencies[-1]
        return ms if time.monotonic() - at <= LATENCY_WINDOW else None

    def stats(self) -> dict[str, Any]:
        """Rates, latency quantiles, drops and viewers for /stats: cheap copies."""
        with self._lock:
            latencies = list(self._latencies)
            drops = dict(self._drops)
        now = time.monotonic()
        recent = sorted(ms for at, ms in latencies if now - at <= LATENCY_WINDOW)
        return {
            "fps": round(self._published.rate(now), 2),
            "latency_ms": {
                "p50": round(percentile(recent, 0.5), 2) if recent else None,
                "p95": round(percentile(recent, 0.95), 2) if recent else None,
                "samples": len(recent),
            },
            "drops": drops,
            "viewers": self.viewers,
        }

    def close(self) -> None:
        """Count nothing more."""
        with self._lock:
            self.closed = True
