"""One camera's channel: its parts, each with one job, and the handle a viewer holds.

The frame slot (slot.py) holds the newest annotated frame; the encode cache
(encodes.py) encodes it once per variant for all its viewers; the watchers
(watchers.py) count the open streams per variant and tell the decoder how
narrow it may decode; the figures (figures.py) count what /stats and
Prometheus report. A viewer holds one handle, `Channel.viewer`: a context
manager that takes a seat and watches on entry, and unwatches and gives the
seat back on exit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from framewire import signals
from framewire.encodes import EncodeCache
from framewire.figures import Figures
from framewire.metrics import ReceiverMetrics
from framewire.seats import Seats
from framewire.slot import FrameSlot, Picture
from framewire.variants import FULL, EncodeKey
from framewire.watchers import Watchers


class CameraNotFound(Exception):
    """A route named a camera the hub does not know (or an invalid camera id)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Settings:
    """What every channel of a receiver shares."""

    metrics: ReceiverMetrics
    transport: str
    quality: int  # --stream-quality
    stale_after: float  # seconds after which the newest frame is "no signal"
    strip: bool = True  # --strip: whether a stream or snapshot has the strip unless it asks


class Channel:
    """One camera's frame slot, encode cache, watchers and figures."""

    def __init__(self, camera: str, settings: Settings, seats: Seats, grid: Watchers) -> None:
        self.camera = camera
        self.seats = seats
        self.slot = FrameSlot(settings.stale_after)
        self.watchers = Watchers(also=grid)
        self.figures = Figures(camera, settings.metrics, settings.transport)
        self.cache = EncodeCache(camera, settings.quality, self.slot, self.watchers, self.figures)

    def publish(
        self,
        image: np.ndarray,
        seq: int,
        captured_ns: int,
        original: bytes | None = None,
        narrowed: bool = False,
        under: np.ndarray | None = None,
    ) -> None:
        """Make `image` the newest frame and wake every waiting viewer.

        `original`: the sender's JPEG that `image` was decoded from, when `image` differs from
        it only in the annotation's strip; the full-size encode then splices (splice.py).
        `narrowed`: decoded at a reduced scale, only as wide as the variants watched then.
        `under`: the top rows of `image` as they were before the strip was drawn over them.
        """
        picture = Picture(image, seq, captured_ns, time.monotonic(), original, narrowed, under)
        if self.slot.publish(picture):
            self.figures.published(picture.received_at)

    @contextmanager
    def viewer(self, key: EncodeKey = FULL) -> Iterator[Channel]:
        """A stream of `key`: a seat and a watch while it is open.

        CameraNotFound if the channel closed since it was looked up (its camera
        forgotten in between, as if the lookup had come a moment later: a 404, not
        the cap's 503); ViewerLimit at the cap or at shutdown.
        """
        if self.slot.closed and not self.seats.closed:
            raise CameraNotFound("unknown_camera", f"no camera {self.camera}")
        self.seats.take()
        try:
            with self.watch(key):
                yield self
        finally:
            self.seats.give_back()

    @contextmanager
    def watch(self, key: EncodeKey = FULL) -> Iterator[Channel]:
        """A watch of `key` without a seat: for a stream that holds its seat itself (a relayed
        stream that serves from this channel for a while, relay.py)."""
        self.figures.viewer(+1)
        self.watchers.add(key)
        try:
            yield self
        finally:
            if self.watchers.remove(key):
                self.cache.drop(key)
            self.figures.viewer(-1)

    def stats(self) -> dict[str, Any]:
        """Live figures for /stats: cheap copies, no encoding."""
        picture, _ = self.slot.newest()
        age = self.slot.age()
        return {
            "state": "live" if self.slot.fresh(picture) else "no signal",
            "signal": signals.signal(picture is not None, self.slot.fresh(picture)),
            "seq": picture.seq if picture is not None else None,
            **self.figures.stats(),
            "age_seconds": round(age, 3) if age is not None else None,
        }

    def close(self) -> None:
        """End the channel: open streams of it end, nothing more is published or counted."""
        self.figures.close()
        self.slot.close()
        self.cache.clear()
