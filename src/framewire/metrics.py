"""Prometheus metrics shared by every service, and a small rate meter.

Each service builds its own `CollectorRegistry` holding only the metrics that
apply to it: `SenderMetrics` for `framewire send`, `ReceiverMetrics` for both
receivers. Names follow Prometheus conventions (`_total`, `_seconds`,
`_bytes`); labels are bounded (camera ids are validated and capped).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # the *_created series only add noise to every scrape

NS = "framewire"
# Half a millisecond from 1 to 20 ms, where frame latencies and codec times fall; coarse
# beyond. 53 bounds (+Inf): exact per-frame quantiles come from the receivers' /latencies.
SECONDS_BUCKETS = (
    0.0005,
    *(round(0.001 + 0.0005 * step, 4) for step in range(39)),  # 1, 1.5, ... 20 ms
    *(0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5),
    *(1.0, 2.5, 5.0, 10.0),
)
BYTES_BUCKETS = tuple(2**k for k in range(12, 24))  # 4 KiB .. 8 MiB
LATENCY_LOG = 8192  # frames whose own latency a LatencyLog keeps (128 KiB each)


def _seconds(name: str, doc: str, labels: list[str], registry: CollectorRegistry) -> Histogram:
    return Histogram(
        f"{NS}_{name}_seconds", doc, labels, buckets=SECONDS_BUCKETS, registry=registry
    )


class _Common:
    """Metrics every service exports."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.frames_dropped = Counter(
            f"{NS}_frames_dropped_total",
            "Frames replaced by a newer one before they were used (latest frame wins).",
            ["camera", "transport", "stage"],
            registry=registry,
        )


class SenderMetrics(_Common):
    """Metrics of `framewire send`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry or CollectorRegistry())
        reg = self.registry
        self.frames_captured = Counter(
            f"{NS}_frames_captured_total", "Frames read from the source.", ["camera"], registry=reg
        )
        self.frames_sent = Counter(
            f"{NS}_frames_sent_total",
            "Frames delivered to a transport.",
            ["camera", "transport"],
            registry=reg,
        )
        self.send_errors = Counter(
            f"{NS}_send_errors_total",
            "Failed sends, by reason.",
            ["camera", "transport", "reason"],
            registry=reg,
        )
        self.source_reconnects = Counter(
            f"{NS}_source_reconnects_total",
            "Times the source was reopened.",
            ["camera"],
            registry=reg,
        )
        self.source_up = Gauge(
            f"{NS}_source_up",
            "1 while the source delivers frames, else 0.",
            ["camera"],
            registry=reg,
        )
        self.capture_fps = Gauge(
            f"{NS}_capture_fps",
            "Frames captured per second, over the last seconds.",
            ["camera"],
            registry=reg,
        )
        self.encode_seconds = _seconds("encode", "JPEG encode time per frame.", ["camera"], reg)
        self.send_seconds = _seconds(
            "send", "Time to hand one frame to a transport.", ["camera", "transport"], reg
        )
        self.frame_bytes = Histogram(
            f"{NS}_frame_bytes",
            "Encoded JPEG size per frame.",
            ["camera"],
            buckets=BYTES_BUCKETS,
            registry=reg,
        )
        # HTTP fan-out (--http-fanout dns): one series per camera and receiver replica (its
        # address); a replica's series are removed when it leaves DNS.
        self.http_replicas = Gauge(
            f"{NS}_http_replicas",
            "Live HTTP receiver replicas (resolved and answering) this camera's owner is chosen"
            " among (--http-fanout dns).",
            ["camera"],
            registry=reg,
        )
        self.owner_changes = Counter(
            f"{NS}_owner_changes_total",
            "Times this camera's HTTP receiver replica (its owner) changed: a replica down, back,"
            " added or removed (--http-fanout dns).",
            ["camera"],
            registry=reg,
        )
        self.replica_frames_sent = Counter(
            f"{NS}_replica_frames_sent_total",
            "Frames delivered to one HTTP receiver replica.",
            ["camera", "replica"],
            registry=reg,
        )
        self.replica_frames_dropped = Counter(
            f"{NS}_replica_frames_dropped_total",
            "Frames one HTTP receiver replica never got while it owned the camera: replaced"
            " unsent while it was busy, or lost in a failed send.",
            ["camera", "replica"],
            registry=reg,
        )
        self.replica_up = Gauge(
            f"{NS}_replica_up",
            "1 while this HTTP receiver replica is live (answering), else 0.",
            ["camera", "replica"],
            registry=reg,
        )
        self.replica_owner = Gauge(
            f"{NS}_replica_owner",
            "1 for the HTTP receiver replica this camera's frames go to (its owner), else 0.",
            ["camera", "replica"],
            registry=reg,
        )

    def forget_replica(self, camera: str, replica: str) -> None:
        """Remove a replica's series (it left DNS): no stale series stays behind."""
        replica_series = (self.replica_frames_sent, self.replica_frames_dropped)
        for metric in (*replica_series, self.replica_up, self.replica_owner):
            with contextlib.suppress(KeyError):  # never labelled, or removed already
                metric.remove(camera, replica)


class ReceiverMetrics(_Common):
    """Metrics of the HTTP and Redis receivers."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry or CollectorRegistry())
        reg = self.registry
        self.frames_received = Counter(
            f"{NS}_frames_received_total",
            "Valid frames received.",
            ["camera", "transport"],
            registry=reg,
        )
        self.frames_rejected = Counter(
            f"{NS}_frames_rejected_total",
            "Frames refused, by reason.",
            ["transport", "reason"],
            registry=reg,
        )
        self.receive_errors = Counter(
            f"{NS}_receive_errors_total",
            "Transport failures while receiving, by reason.",
            ["transport", "reason"],
            registry=reg,
        )
        self.receive_fps = Gauge(
            f"{NS}_receive_fps",
            "Frames processed per second, over the last seconds.",
            ["camera", "transport"],
            registry=reg,
        )
        self.requests_refused = Counter(
            f"{NS}_requests_refused_total",
            "Viewer requests refused, by reason (unauthorized, rate_limited).",
            ["transport", "reason"],
            registry=reg,
        )
        self.viewers = Gauge(
            f"{NS}_viewers", "Open MJPEG streams.", ["camera", "transport"], registry=reg
        )
        self.decode_seconds = _seconds(
            "decode", "JPEG decode time per frame.", ["camera", "transport"], reg
        )
        self.process_seconds = _seconds(
            "process", "Processing and annotation time per frame.", ["camera", "transport"], reg
        )
        self.frame_bytes = Histogram(
            f"{NS}_frame_bytes",
            "Received JPEG size per frame.",
            ["camera", "transport"],
            buckets=BYTES_BUCKETS,
            registry=reg,
        )
        self.frame_latency = _seconds(
            "frame_latency",
            "Time from capture to a stage: `received` (decoded) or `served` (encoded for viewers).",
            ["camera", "transport", "stage"],
            reg,
        )
        self.viewer_encodes = Counter(
            f"{NS}_viewer_encodes_total",
            "JPEG encodes for viewers, by camera and variant (one per frame and variant watched).",
            ["camera", "transport", "variant"],
            registry=reg,
        )
        self.viewer_encode_path = Counter(
            f"{NS}_viewer_encode_path_total",
            "How each viewer encode was made: path `splice` (only the annotation's band"
            " re-encoded into the sender's JPEG) or `full` (the whole frame), with the reason the"
            " splice did not apply (`ok` for a splice).",
            ["camera", "transport", "path", "reason"],
            registry=reg,
        )
        self.grid_encodes = Counter(
            f"{NS}_grid_encodes_total",
            "Mosaics of every camera encoded for /grid.mjpg (one per tick watched).",
            ["transport"],
            registry=reg,
        )
        self.replica_members = Gauge(
            f"{NS}_replica_members",
            "Live replicas of this receiver that this replica sees, itself included (1: alone).",
            ["transport"],
            registry=reg,
        )
        self.camera_owned = Gauge(
            f"{NS}_camera_owned",
            "1 for each camera this replica owns (reads and decodes); 0 for a camera another"
            " replica owns.",
            ["camera", "transport"],
            registry=reg,
        )
        self.camera_takeovers = Counter(
            f"{NS}_camera_takeovers_total",
            "Cameras this replica started owning after the replicas changed (one joined or left).",
            ["camera", "transport"],
            registry=reg,
        )
        self.takeover_seconds = Gauge(
            f"{NS}_camera_takeover_seconds",
            "The newest takeover of a camera: seconds from this replica seeing the change of"
            " replicas to its first frame of the camera decoded.",
            ["camera", "transport"],
            registry=reg,
        )
        self.connections_dropped = Counter(
            f"{NS}_connections_dropped_total",
            "Client connections closed before their request was served or answered, by reason"
            " (request_timeout: the request did not arrive in full in time; send_timeout: a"
            " viewer could not take a whole frame within --viewer-timeout; buffer_full: request"
            " buffers were full; connection_limit: closed to make room at the connection limit;"
            " incomplete: the client closed in the middle of its request).",
            ["transport", "reason"],
            registry=reg,
        )


class RateMeter:
    """Events per second over a sliding window, thread-safe."""

    def __init__(self, window: float = 2.0) -> None:
        self._window = window
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            return (len(self._times) - 1) / max(now - self._times[0], 1e-9)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self._window:
            self._times.popleft()


class LatencyLog:
    """The last `capacity` frames' capture time and latency, in arrival order; thread-safe.

    Every frame added gets the next index (0, 1, ...); the oldest fall out
    once `capacity` are held. `since(index)` returns what is still held from
    `index` on and how many of those frames are no longer held (`lost`), so a
    reader can tell a complete series from a ring that overflowed.
    """

    def __init__(self, capacity: int = LATENCY_LOG) -> None:
        self.capacity = capacity
        self._captured_ns = np.zeros(capacity, np.int64)
        self._seconds = np.zeros(capacity, np.float64)
        self._next = 0
        self._lock = threading.Lock()

    def add(self, captured_ns: int, seconds: float) -> None:
        """Record one frame: its capture time (ns since the epoch) and latency (seconds)."""
        with self._lock:
            slot = self._next % self.capacity
            self._captured_ns[slot] = captured_ns
            self._seconds[slot] = seconds
            self._next += 1

    def since(self, index: int = 0) -> dict[str, Any]:
        """Frames from `index` on: `captured_ns` and `seconds` lists, `next`, `lost`."""
        with self._lock:
            first = max(0, self._next - self.capacity)
            start = min(max(index, first), self._next)
            slots = np.arange(start, self._next) % self.capacity
            captured, seconds = self._captured_ns[slots], self._seconds[slots]
            end = self._next
        return {
            "capacity": self.capacity,
            "first": first,
            "next": end,
            "lost": max(0, min(first, end) - max(index, 0)),
            "captured_ns": captured.tolist(),
            "seconds": seconds.tolist(),
        }
