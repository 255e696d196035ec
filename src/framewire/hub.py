"""The hub: every known camera's channel (channel.py), the viewer count and its cap.

A camera is added by the pipeline after its first accepted frame and removed
when it is forgotten (its open streams then end). Only a default camera named
by `--default-camera` has a channel from the start; without one, the bare
routes mean the first camera (by id) that exists, and none before a frame.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import cv2

from framewire.channel import FPS_WINDOW, LATENCY_WINDOW, Channel
from framewire.config import ReceiverConfig
from framewire.frame import WireError, parse_camera
from framewire.metrics import ReceiverMetrics


class CameraNotFound(Exception):
    """A route named a camera the hub does not know (or an invalid camera id)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Hub:
    """The known cameras' channels, the viewer count and its cap."""

    def __init__(self, metrics: ReceiverMetrics, config: ReceiverConfig) -> None:
        self.metrics = metrics
        self.transport = config.transport
        self.quality = config.stream_quality
        self.encode_params = self.params(config.stream_quality)
        self.default_camera = config.default_camera
        self.max_cameras = config.max_cameras
        self.max_viewers = config.max_viewers
        self.stale_after = config.stale_after
        self.keepalive = config.keepalive
        self.closed = False
        self.closers: list[Callable[[], None]] = []  # more to end at close (the grid's streams)
        self.grid_viewers = 0  # open /grid.mjpg streams (set by the grid)
        self._channels: dict[str, Channel] = {}
        self._viewers = 0
        self._lock = threading.Lock()
        if self.default_camera:  # declared: known, "no signal", until its frames come
            self.add(self.default_camera)

    @staticmethod
    def params(quality: int) -> list[int]:
        """cv2.imencode's parameters for a JPEG of `quality`."""
        return [cv2.IMWRITE_JPEG_QUALITY, quality]

    def find(self, camera: str) -> Channel | None:
        """The channel of a known camera, else None."""
        return self._channels.get(camera)

    def full(self) -> bool:
        """True when no new camera fits (`max_cameras` counts the default camera)."""
        return len(self._channels) >= self.max_cameras

    def add(self, camera: str) -> Channel:
        """The channel of `camera`, added if new; WireError `camera_limit` when full."""
        with self._lock:
            channel = self._channels.get(camera)
            if channel is None:
                if len(self._channels) >= self.max_cameras:
                    raise WireError("camera_limit", f"at most {self.max_cameras} cameras")
                channel = self._channels[camera] = Channel(self, camera)
                self.metrics.viewers.labels(camera, self.transport).set(0)
            return channel

    def remove(self, camera: str) -> None:
        """Forget `camera`: its channel closes (its streams end) and its slot frees."""
        with self._lock:
            channel = self._channels.pop(camera, None)
            if channel is None:
                return
            channel.close()
            self._viewers -= channel.viewers

    def default(self) -> str | None:
        """The camera the bare routes mean: the declared one, else the first by id, else None."""
        if self.default_camera:
            return self.default_camera
        with self._lock:
            return min(self._channels, default=None)

    def lookup(self, camera: str | None) -> Channel:
        """The channel a route names (None: the default camera); CameraNotFound if unknown."""
        name = camera or self.default()
        if name is None:
            raise CameraNotFound("no_camera", "no camera has sent a frame yet")
        try:
            name = parse_camera(name)
        except WireError as exc:
            raise CameraNotFound(exc.reason, exc.detail) from None
        channel = self._channels.get(name)
        if channel is None:
            raise CameraNotFound("unknown_camera", f"no camera {name}")
        return channel

    def channels(self) -> list[Channel]:
        """Every known camera's channel, by camera id."""
        with self._lock:
            return [self._channels[c] for c in sorted(self._channels)]

    def acquire_viewer(self, channel: Channel | None) -> bool:
        """Count a new viewer of `channel` (None: the grid); False at the cap or once closed.

        A channel closed since it was looked up (its camera forgotten in between) is
        CameraNotFound, as if the lookup had come a moment later: a 404, not the cap's 503.
        """
        with self._lock:
            if channel is not None and channel.closed and not self.closed:
                raise CameraNotFound("unknown_camera", f"no camera {channel.camera}")
            if self._viewers >= self.max_viewers or self.closed:
                return False
            if channel is None:
                self._viewers += 1
                return True
            self._viewers += 1
            channel.viewers += 1
            self.metrics.viewers.labels(channel.camera, self.transport).inc()
        return True

    def release_viewer(self, channel: Channel | None) -> None:
        """A viewer of `channel` (None: the grid) left (a forgotten channel's were uncounted)."""
        with self._lock:
            if channel is None:
                self._viewers -= 1
                return
            if channel.closed and self._channels.get(channel.camera) is not channel:
                return
            self._viewers -= 1
            channel.viewers -= 1
            self.metrics.viewers.labels(channel.camera, self.transport).dec()

    def stats(self) -> dict[str, Any]:
        """The JSON of /stats: every known camera's live figures."""
        return {
            "transport": self.transport,
            "server_time": time.time(),
            "default_camera": self.default(),
            "stale_after": self.stale_after,
            "window_seconds": {"fps": FPS_WINDOW, "latency": LATENCY_WINDOW},
            "cameras": {c.camera: c.stats() for c in self.channels()},
        }

    def close(self) -> None:
        """End every open stream (at shutdown)."""
        with self._lock:
            self.closed = True
            channels = list(self._channels.values())
        for channel in channels:
            channel.close()
        for closer in self.closers:
            closer()
