"""One camera's channel: its newest annotated frame, encoded once per variant for all viewers.

The frame is JPEG-encoded at most once per encode key (width, quality), when
the first viewer (or snapshot) of that key asks for it, and that encoding is
shared by every viewer of the key; nothing is encoded while nobody watches,
and a key nobody watches any more keeps no picture. The full-size encode of a
frame the processor left as decoded re-encodes only the annotation's band
into the sender's JPEG (splice.py). Viewers wait on the channel's condition
for the next frame; a frame older than `stale_after` is replaced by a "no
signal" picture.

Each channel also counts what /stats reports when it happens: frames
published (one rate meter, also shown on the frame), frames dropped by stage,
open viewers, and the recent capture-to-served latencies. Nothing here reads
Prometheus back. Each frame's own latency, received and served, is also kept
in a bounded `LatencyLog` for `/latencies`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from framewire.metrics import LatencyLog, RateMeter, ReceiverMetrics
from framewire.overlay import no_signal, strip_height
from framewire.splice import SpliceError, splice
from framewire.variants import FULL, EncodeKey, key_label, scaled


class Hub(Protocol):
    """What a channel reads of the hub that holds it (hub.Hub)."""

    metrics: ReceiverMetrics
    transport: str
    quality: int
    encode_params: list[int]
    stale_after: float
    grid_viewers: int

    def params(self, quality: int) -> list[int]: ...


log = logging.getLogger(__name__)

RING = 300  # latency samples kept per channel for /stats
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


@dataclass(frozen=True, slots=True)
class Served:
    """An encoded picture ready for viewers."""

    jpeg: bytes
    seq: int | None  # None for the "no signal" picture
    captured_ns: int
    version: int


class Channel:
    """One camera's newest annotated frame, its figures, and the viewers waiting for it."""

    def __init__(self, hub: Hub, camera: str) -> None:
        self.hub = hub
        self.camera = camera
        self._cond = threading.Condition()
        self._image: np.ndarray | None = None
        self._original: bytes | None = None  # the sender's JPEG, if the band splice may use it
        self._reason = ""  # why the last full-size encode took its path, logged when it changes
        self._seq = 0
        self._captured_ns = 0
        self._received_at = 0.0  # monotonic
        self._version = 0
        self._served: dict[EncodeKey, Served] = {}  # the newest picture per encode key
        self._watchers: dict[EncodeKey, int] = {}  # open streams per encode key but FULL
        self._full_streams = 0  # open streams of FULL
        self._narrowed = False  # the newest image was decoded narrower than the frame
        self._measured = 0  # the version whose served latency was recorded
        self._published = RateMeter(FPS_WINDOW)
        self._latencies: deque[tuple[float, float]] = deque(maxlen=RING)  # (monotonic, ms)
        self._drops = dict.fromkeys(DROP_STAGES, 0)
        self.latency_logs = {stage: LatencyLog() for stage in LATENCY_STAGES}
        self.viewers = 0
        self.closed = False

    def publish(
        self,
        image: np.ndarray,
        seq: int,
        captured_ns: int,
        original: bytes | None = None,
        narrowed: bool = False,
    ) -> None:
        """Make `image` the newest frame and wake every waiting viewer.

        `original`: the sender's JPEG that `image` was decoded from, when `image` differs from
        it only in the annotation's strip; the full-size encode then splices (splice.py).
        `narrowed`: decoded at a reduced scale, only as wide as the variants watched then.
        """
        with self._cond:
            if self.closed:
                return
            self._image, self._seq, self._captured_ns = image, seq, captured_ns
            self._original = original
            self._narrowed = narrowed
            self._received_at = time.monotonic()
            self._published.tick(self._received_at)
            self._version += 1
            self._cond.notify_all()

    def count_drop(self, stage: str, count: int = 1) -> None:
        """Count `count` frames replaced unused at `stage` (`receive`, `stale` or `process`)."""
        with self._cond:
            if self.closed:
                return
            self._drops[stage] += count
        self.hub.metrics.frames_dropped.labels(self.camera, self.hub.transport, stage).inc(count)

    def fps(self) -> float:
        """Frames published per second over the last FPS_WINDOW seconds."""
        return self._published.rate()

    def served_latency_ms(self) -> float | None:
        """The latest capture-to-served latency, None when nothing was served lately."""
        with self._cond:
            if not self._latencies:
                return None
            at, ms = self._latencies[-1]
        return ms if time.monotonic() - at <= LATENCY_WINDOW else None

    def age(self) -> float | None:
        """Seconds since the newest frame arrived, None without a frame."""
        return time.monotonic() - self._received_at if self._image is not None else None

    def fresh(self) -> bool:
        age = self.age()
        return age is not None and age <= self.hub.stale_after

    def stats(self) -> dict[str, Any]:
        """Live figures for /stats: cheap copies, no encoding."""
        with self._cond:
            latencies = list(self._latencies)
            seq = self._seq if self._image is not None else None
            drops = dict(self._drops)
        now = time.monotonic()
        recent = sorted(ms for at, ms in latencies if now - at <= LATENCY_WINDOW)
        age = self.age()
        return {
            "state": "live" if self.fresh() else "no signal",
            "seq": seq,
            "fps": round(self._published.rate(now), 2),
            "latency_ms": {
                "p50": round(percentile(recent, 0.5), 2) if recent else None,
                "p95": round(percentile(recent, 0.95), 2) if recent else None,
                "samples": len(recent),
            },
            "drops": drops,
            "viewers": self.viewers,
            "age_seconds": round(age, 3) if age is not None else None,
        }

    def wait(self, after_version: int, timeout: float) -> None:
        """Block until a frame newer than `after_version` arrives, `timeout` passes, or close."""
        with self._cond:
            if self._version == after_version and not self.closed:
                self._cond.wait(timeout)

    def release_image(self) -> None:
        """Let go of the newest frame (an idle default camera): viewers see "waiting for frames"."""
        with self._cond:
            self._image = self._original = None
            self._served.clear()
            self._version += 1
            self._cond.notify_all()

    def close(self) -> None:
        """End the channel: open streams of it end, nothing more is published or counted."""
        with self._cond:
            self.closed = True
            self._image = self._original = None
            self._served.clear()
            self._cond.notify_all()

    def pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less if the channel closes meanwhile."""
        end = time.monotonic() + seconds
        with self._cond:
            while not self.closed and (left := end - time.monotonic()) > 0:
                self._cond.wait(left)

    def watch(self, key: EncodeKey) -> None:
        """A stream of encode key `key` opened."""
        with self._cond:
            if key == FULL:
                self._full_streams += 1
            else:
                self._watchers[key] = self._watchers.get(key, 0) + 1

    def unwatch(self, key: EncodeKey) -> None:
        """A stream of `key` closed; the last one lets go of the key's picture."""
        with self._cond:
            if key == FULL:
                self._full_streams -= 1
                return
            left = self._watchers.get(key, 0) - 1
            if left > 0:
                self._watchers[key] = left
            else:
                self._watchers.pop(key, None)
                self._served.pop(key, None)

    def decode_width(self) -> int | None:
        """The narrowest width the next frame may be decoded at; None: its full size.

        Reduced only while every open stream watches a narrower variant: a
        full-width stream, the grid, or no stream at all (snapshots, a viewer
        about to open) keep the full size. A snapshot taken meanwhile has the
        widest watched variant's width.
        """
        with self._cond:
            if self._full_streams or not self._watchers or self.hub.grid_viewers:
                return None
            widths = [width for width, _ in self._watchers]
        return None if None in widths else max(w for w in widths if w is not None)

    def fits(self, key: EncodeKey) -> bool:
        """Whether the newest image is wide enough for `key` (not decoded for narrower ones)."""
        with self._cond:
            if not self._narrowed or self._image is None:
                return True
            return key[0] is not None and key[0] <= self._image.shape[1]

    def encode_keys(self) -> list[EncodeKey]:
        """The encode keys holding a picture now (FULL and the watched variants)."""
        with self._cond:
            return list(self._served)

    def latest(self) -> tuple[np.ndarray | None, int]:
        """The newest frame if it is fresh (else None) and its version; no encoding."""
        with self._cond:
            return (self._image if self.fresh() else None), self._version

    def current(self, key: EncodeKey = FULL) -> Served:
        """The picture to serve now: the newest frame encoded once per `key`, or "no signal"."""
        with self._cond:
            cached = self._served.get(key)
            if cached and cached.version == self._version and (cached.seq is None or self.fresh()):
                return cached
            if self._image is None or not self.fresh():
                return self._no_signal(key)
            jpeg, path, reason = self._encode(key)
            if not self.closed:
                labels = (self.camera, self.hub.transport)
                self.hub.metrics.viewer_encodes.labels(*labels, key_label(key)).inc()
                self.hub.metrics.viewer_encode_path.labels(*labels, path, reason).inc()
            if self._measured != self._version:  # once per frame, whichever key came first
                self._measured = self._version
                latency = max(0.0, (time.time_ns() - self._captured_ns) / 1e9)  # clock skew
                self._latencies.append((time.monotonic(), latency * 1000))
                self.latency_logs["served"].add(self._captured_ns, latency)
                if not self.closed:
                    self.hub.metrics.frame_latency.labels(
                        self.camera, self.hub.transport, "served"
                    ).observe(latency)
            served = Served(jpeg, self._seq, self._captured_ns, self._version)
            if key == FULL or key in self._watchers:  # no picture kept for a key nobody watches
                self._served[key] = served
            return served

    def _encode(self, key: EncodeKey) -> tuple[bytes, str, str]:
        """The newest frame as a JPEG of `key`, its path (`splice`, `full`) and the reason."""
        assert self._image is not None
        jpeg, reason = b"", "variant" if key != FULL else "processed"  # processed: no original
        if key == FULL and self._original is not None:
            band = strip_height(self._image.shape[1])
            try:
                jpeg, reason = splice(self._original, self._image, band, self.hub.quality), "ok"
            except SpliceError as exc:
                reason = exc.reason
        if key == FULL and self._reason != reason:  # one line per change of the full path
            log.info("camera %s: full-size viewer encode: %s", self.camera, reason)
            self._reason = reason
        if jpeg:
            return jpeg, "splice", reason
        width, quality = key
        params = self.hub.encode_params if quality is None else self.hub.params(quality)
        ok, buffer = cv2.imencode(".jpg", scaled(self._image, width), params)
        if not ok:  # pragma: no cover - imencode of a valid image does not fail
            raise RuntimeError("JPEG encode failed")
        return buffer.tobytes(), "full", reason

    def _no_signal(self, key: EncodeKey) -> Served:
        cached = self._served.get(key)
        if cached is None or cached.seq is not None:
            height, width = self._image.shape[:2] if self._image is not None else (360, 640)
            if key[0] is not None and key[0] < width:
                width, height = key[0], max(1, round(height * key[0] / width))
            detail = "waiting for frames" if self._image is None else "last frame too old"
            picture = no_signal(width, height, self.camera, detail)
            params = self.hub.encode_params if key[1] is None else self.hub.params(key[1])
            _, buffer = cv2.imencode(".jpg", picture, params)
            cached = Served(buffer.tobytes(), None, self._captured_ns, self._version)
            if key == FULL or key in self._watchers:
                self._served[key] = cached
        return cached
