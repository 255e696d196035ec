"""The viewer hub and the Flask blueprint both receivers serve.

The hub keeps, per camera, the newest annotated frame. It is JPEG-encoded at
most once, when the first viewer (or snapshot) asks for it, and that one
encoding is shared by every viewer; nothing is encoded while nobody
watches. Each MJPEG viewer waits on the channel's condition for the next
frame and so skips whatever it is too slow for; on a still scene it re-sends
the last frame as a keepalive; a frame older than `stale_after` is replaced
by a "no signal" picture.

Each channel also keeps two small bounded rings, the times frames were
published and the recent capture-to-served latencies, from which `/stats`
reports live fps and latency percentiles without encoding anything.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from flask import Blueprint, Response, abort, jsonify, make_response, render_template, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from framewire.frame import WireError, parse_camera
from framewire.metrics import RateMeter, ReceiverMetrics
from framewire.overlay import no_signal
from framewire.transports.http import HEADER_CAPTURED_NS, HEADER_SEQ

BOUNDARY = b"framewireframe"
RING = 300  # samples kept per channel for /stats
LATENCY_WINDOW = 5.0  # seconds of served latencies behind p50 and p95
FPS_WINDOW = 2.0  # seconds of published frames behind the fps figure
DROP_STAGES = ("receive", "process")


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
    """One camera's newest annotated frame and the viewers waiting for it."""

    def __init__(self, hub: Hub, camera: str) -> None:
        self.hub = hub
        self.camera = camera
        self._cond = threading.Condition()
        self._image: np.ndarray | None = None
        self._seq = 0
        self._captured_ns = 0
        self._received_at = 0.0  # monotonic
        self._version = 0
        self._served: Served | None = None
        self._published = RateMeter(FPS_WINDOW)
        self._latencies: deque[tuple[float, float]] = deque(maxlen=RING)  # (monotonic, ms)
        self.served_latency_ms: float | None = None
        self.viewers = 0

    def publish(self, image: np.ndarray, seq: int, captured_ns: int) -> None:
        """Make `image` the newest frame and wake every waiting viewer."""
        with self._cond:
            self._image, self._seq, self._captured_ns = image, seq, captured_ns
            self._received_at = time.monotonic()
            self._published.tick(self._received_at)
            self._version += 1
            self._cond.notify_all()

    def age(self) -> float | None:
        """Seconds since the newest frame arrived, None before the first."""
        return time.monotonic() - self._received_at if self._image is not None else None

    def fresh(self) -> bool:
        age = self.age()
        return age is not None and age <= self.hub.stale_after

    @property
    def has_frame(self) -> bool:
        return self._image is not None

    def stats(self, drops: dict[str, int]) -> dict[str, Any]:
        """Live figures for /stats: cheap copies of the rings, no encoding."""
        with self._cond:
            latencies = list(self._latencies)
            seq = self._seq if self._image is not None else None
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
            "drops": {**dict.fromkeys(DROP_STAGES, 0), **drops},
            "viewers": self.viewers,
            "age_seconds": round(age, 3) if age is not None else None,
        }

    def wait(self, after_version: int, timeout: float) -> None:
        """Block until a frame newer than `after_version` arrives, or `timeout` passes."""
        with self._cond:
            if self._version == after_version and not self.hub.closed:
                self._cond.wait(timeout)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def current(self) -> Served:
        """The picture to serve now: the newest frame, encoded once, or "no signal"."""
        with self._cond:
            cached = self._served
            if cached and cached.version == self._version and (cached.seq is None or self.fresh()):
                return cached
            if self._image is None or not self.fresh():
                return self._no_signal()
            ok, buffer = cv2.imencode(".jpg", self._image, self.hub.encode_params)
            if not ok:  # pragma: no cover - imencode of a valid image does not fail
                raise RuntimeError("JPEG encode failed")
            latency = (time.time_ns() - self._captured_ns) / 1e9
            self.served_latency_ms = latency * 1000
            self._latencies.append((time.monotonic(), self.served_latency_ms))
            self.hub.metrics.frame_latency.labels(
                self.camera, self.hub.transport, "served"
            ).observe(latency)
            self._served = Served(buffer.tobytes(), self._seq, self._captured_ns, self._version)
            return self._served

    def _no_signal(self) -> Served:
        if self._served is None or self._served.seq is not None:
            height, width = self._image.shape[:2] if self._image is not None else (360, 640)
            detail = "waiting for frames" if self._image is None else "last frame too old"
            picture = no_signal(width, height, self.camera, detail)
            _, buffer = cv2.imencode(".jpg", picture, self.hub.encode_params)
            self._served = Served(buffer.tobytes(), None, self._captured_ns, self._version)
        return self._served


class Hub:
    """Per-camera channels, the viewer count and its cap."""

    def __init__(
        self,
        metrics: ReceiverMetrics,
        transport: str,
        quality: int = 80,
        max_cameras: int = 16,
        max_viewers: int = 20,
        stale_after: float = 2.0,
        keepalive: float = 1.0,
    ) -> None:
        self.metrics = metrics
        self.transport = transport
        self.encode_params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        self.max_cameras = max_cameras
        self.max_viewers = max_viewers
        self.stale_after = stale_after
        self.keepalive = keepalive
        self.closed = False
        self._channels: dict[str, Channel] = {}
        self._viewers = 0
        self._lock = threading.Lock()

    def channel(self, camera: str) -> Channel:
        """The channel for `camera`, made on first use; WireError past `max_cameras`."""
        channel = self._channels.get(camera)
        if channel is not None:
            return channel
        with self._lock:
            if camera not in self._channels:
                if len(self._channels) >= self.max_cameras:
                    raise WireError("camera_limit", f"at most {self.max_cameras} cameras")
                self._channels[camera] = Channel(self, camera)
                self.metrics.viewers.labels(camera, self.transport).set(0)
            return self._channels[camera]

    def find(self, camera: str) -> Channel | None:
        """The channel for `camera` if frames made it, else None."""
        return self._channels.get(camera)

    def cameras(self) -> list[str]:
        with self._lock:
            return sorted(self._channels)

    def acquire_viewer(self, camera: str) -> bool:
        """Count a new viewer of `camera`; False when the cap is reached."""
        with self._lock:
            if self._viewers >= self.max_viewers or self.closed:
                return False
            self._viewers += 1
            self._channels[camera].viewers += 1
        self.metrics.viewers.labels(camera, self.transport).inc()
        return True

    def release_viewer(self, camera: str) -> None:
        with self._lock:
            self._viewers -= 1
            self._channels[camera].viewers -= 1
        self.metrics.viewers.labels(camera, self.transport).dec()

    def stats(self, default_camera: str) -> dict[str, Any]:
        """Every camera that has had a frame (and the default one): the JSON of /stats."""
        drops = self._drops()
        with contextlib.suppress(WireError):  # at the camera cap the default may be missing
            self.channel(default_camera)
        channels = [self._channels[c] for c in self.cameras()]
        cameras = {
            c.camera: c.stats(drops.get(c.camera, {}))
            for c in channels
            if c.has_frame or c.camera == default_camera
        }
        return {
            "transport": self.transport,
            "server_time": time.time(),
            "default_camera": default_camera,
            "stale_after": self.stale_after,
            "window_seconds": {"fps": FPS_WINDOW, "latency": LATENCY_WINDOW},
            "cameras": cameras,
        }

    def _drops(self) -> dict[str, dict[str, int]]:
        """Dropped frames per camera and stage, read from the counter in one pass."""
        drops: dict[str, dict[str, int]] = {}
        for family in self.metrics.frames_dropped.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    labels = sample.labels
                    drops.setdefault(labels["camera"], {})[labels["stage"]] = int(sample.value)
        return drops

    def close(self) -> None:
        """End every open stream (at shutdown)."""
        self.closed = True
        for channel in list(self._channels.values()):
            channel.wake()

    def mjpeg(self, channel: Channel) -> Iterator[bytes]:
        """multipart/x-mixed-replace parts; each part is followed by the boundary at once."""
        try:
            yield b"--" + BOUNDARY + b"\r\n"
            version = -1
            while not self.closed:
                served = channel.current()
                if served.version == version and served.seq is not None:
                    channel.wait(version, self.keepalive)
                    served = channel.current()  # newer frame, or the same one as keepalive
                version = served.version
                yield (
                    b"Content-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(served.jpeg)
                    + served.jpeg
                    + b"\r\n--"
                    + BOUNDARY
                    + b"\r\n"
                )
                if served.seq is None:  # no signal: poll for the source coming back
                    channel.wait(version, self.keepalive)
        finally:
            self.release_viewer(channel.camera)


def viewer_blueprint(
    hub: Hub, default_camera: str, peer_url: str = "", grafana_url: str = ""
) -> Blueprint:
    """/, /stats, /stream.mjpg, /snapshot.jpg (and per-camera forms), /healthz, /readyz, /metrics.

    `peer_url` is the other receiver's public URL: the page at / then shows
    its streams and /stats beside this receiver's, fetched by the browser
    (so /stats allows any origin). `grafana_url`, when set, is linked.
    """
    bp = Blueprint("viewer", __name__, template_folder="templates")
    page_config = {
        "transport": hub.transport,
        "peer_url": peer_url.rstrip("/"),
        "grafana_url": grafana_url,
        "default_camera": default_camera,
    }

    def lookup(camera: str | None) -> Channel:
        """The channel a viewer asks for; viewers never create cameras (but the default)."""
        try:
            name = parse_camera(camera or default_camera)
        except WireError as exc:
            abort(make_response(jsonify(error=exc.reason, detail=exc.detail), 404))
        channel = hub.channel(name) if name == default_camera else hub.find(name)
        if channel is None:
            abort(make_response(jsonify(error="unknown_camera", detail=f"no camera {name}"), 404))
        return channel

    @bp.get("/")
    def index() -> str:
        cameras = sorted(hub.stats(default_camera)["cameras"])
        focus = default_camera if default_camera in cameras or not cameras else cameras[0]
        return render_template("viewer.html", config=page_config, focus=focus, **page_config)

    @bp.get("/stats")
    def stats() -> Response:
        response = jsonify(hub.stats(default_camera))
        response.headers["Cache-Control"] = "no-store"
        # Read by the peer receiver's page from the browser; GET only, no credentials.
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    @bp.get("/stream.mjpg")
    @bp.get("/stream/<camera>.mjpg")
    def stream(camera: str | None = None) -> Response:
        channel = lookup(camera)
        if not hub.acquire_viewer(channel.camera):
            return jsonify(error="viewer_limit", detail=f"at most {hub.max_viewers} viewers"), 503
        return Response(
            hub.mjpeg(channel),
            headers={"Cache-Control": "no-store"},
            mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}",
        )

    @bp.get("/snapshot.jpg")
    @bp.get("/snapshot/<camera>.jpg")
    def snapshot(camera: str | None = None) -> Response:
        served = lookup(camera).current()
        headers = {"Cache-Control": "no-store"}
        if served.seq is not None:
            headers[HEADER_SEQ] = str(served.seq)
            headers[HEADER_CAPTURED_NS] = str(served.captured_ns)
        return Response(
            served.jpeg,
            mimetype="image/jpeg",
            headers=headers,
            status=200 if served.seq is not None else 503,
        )

    @bp.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @bp.get("/readyz")
    def readyz() -> tuple[Response, int]:
        camera = request.args.get("camera")
        channels = [lookup(camera)] if camera else [hub.channel(c) for c in hub.cameras()]
        ages = {c.camera: c.age() for c in channels}
        ready = any(c.fresh() for c in channels)
        return jsonify(ready=ready, stale_after=hub.stale_after, age_seconds=ages), (
            200 if ready else 503
        )

    @bp.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(hub.metrics.registry), mimetype=CONTENT_TYPE_LATEST)

    return bp
