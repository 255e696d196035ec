"""A camera's encode cache: its newest frame as a JPEG, encoded once per encode key.

The first viewer (or snapshot) of a key to ask for a frame encodes it, and
every viewer of that key shares the JPEG; nothing is encoded while nobody
asks, and a key nobody watches any more keeps no picture. The full-size
encode of a frame the processor left as decoded re-encodes only the
annotation's band into the sender's JPEG (splice.py), and without the strip
it is the sender's JPEG itself (no encode); otherwise the frame is encoded
whole, scaled to the key's width, with the rows under the strip put back for a
key without it. A frame older than `stale_after` is
served as a "no signal" picture.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from framewire.figures import Figures
from framewire.overlay import no_signal, strip_height
from framewire.slot import FrameSlot, Picture
from framewire.splice import SpliceError, splice
from framewire.variants import FULL, EncodeKey, scaled
from framewire.watchers import Watchers

log = logging.getLogger(__name__)


def jpeg(image: np.ndarray, quality: int) -> bytes:
    """`image` as a JPEG of `quality`."""
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - imencode of a valid image does not fail
        raise RuntimeError("JPEG encode failed")
    return buffer.tobytes()


@dataclass(frozen=True, slots=True)
class Served:
    """An encoded picture ready for viewers."""

    jpeg: bytes
    seq: int | None  # None for the "no signal" picture
    captured_ns: int
    version: int


class EncodeCache:
    """The newest picture of a camera's slot per encode key, encoded by the first to ask."""

    def __init__(
        self,
        camera: str,
        quality: int,
        slot: FrameSlot,
        watchers: Watchers,
        figures: Figures,
    ) -> None:
        self.camera = camera
        self.quality = quality  # the receiver's --stream-quality: a key's quality None
        self.slot = slot
        self.watchers = watchers
        self.figures = figures
        self._lock = threading.Lock()
        self._served: dict[EncodeKey, Served] = {}  # the newest picture per encode key
        self._reason = ""  # why the last full-size encode took its path, logged when it changes

    def get(self, key: EncodeKey = FULL) -> Served:
        """The picture to serve now: the newest frame encoded once per `key`, or "no signal"."""
        # The encode runs under the cache's lock, never the slot's: publishing never waits
        # for it, and the viewers of a key wait for the one encode they share.
        with self._lock:
            picture, version = self.slot.newest()
            live = self.slot.fresh(picture)
            cached = self._served.get(key)
            if cached and cached.version == version and (cached.seq is None or live):
                return cached
            if picture is not None and live:
                served = self._encode(key, picture, version)
            else:
                served = self._no_signal(key, picture, version)
            if key == FULL or self.watchers.watched(key):  # no picture for a key nobody watches
                self._served[key] = served
            return served

    def drop(self, key: EncodeKey) -> None:
        """Let go of the picture of `key` (its last viewer left)."""
        with self._lock:
            if key != FULL:
                self._served.pop(key, None)

    def clear(self) -> None:
        """Let go of every picture (the camera is forgotten)."""
        with self._lock:
            self._served.clear()

    def __contains__(self, key: EncodeKey) -> bool:
        """Whether `key` holds a picture now (FULL and the watched variants may)."""
        with self._lock:
            return key in self._served

    def _encode(self, key: EncodeKey, picture: Picture, version: int) -> Served:
        """`picture` as a JPEG of `key`: at full size, the sender's JPEG as it came (no strip)
        or with the strip's band spliced in, when it may; else encoded whole."""
        width, quality, strip = key
        full = width is None and quality is None
        data, reason = b"", "processed" if full else "variant"  # (processed: no original)
        if full and picture.original is not None:
            if not strip:  # the camera's pixels as sent: nothing to encode
                self.figures.served(version, picture.captured_ns)
                data = bytes(picture.original)  # a bytearray from the HTTP transport
                return Served(data, picture.seq, picture.captured_ns, version)
            band = strip_height(picture.image.shape[1])
            try:
                data, reason = splice(picture.original, picture.image, band, self.quality), "ok"
            except SpliceError as exc:
                reason = exc.reason
        if key == FULL and self._reason != reason:  # one line per change of the full path
            log.info("camera %s: full-size viewer encode: %s", self.camera, reason)
            self._reason = reason
        path = "splice" if data else "full"
        if not data:
            image = picture.image if strip else picture.bare()
            data = jpeg(scaled(image, width), quality or self.quality)
        self.figures.encoded(key, path, reason)
        self.figures.served(version, picture.captured_ns)
        return Served(data, picture.seq, picture.captured_ns, version)

    def _no_signal(self, key: EncodeKey, picture: Picture | None, version: int) -> Served:
        """The "no signal" picture of `key`: as large as the last frame, captioned why."""
        height, width = picture.image.shape[:2] if picture is not None else (360, 640)
        if key[0] is not None and key[0] < width:
            width, height = key[0], max(1, round(height * key[0] / width))
        detail = "waiting for frames" if picture is None else "last frame too old"
        image = no_signal(width, height, self.camera, detail)
        captured_ns = picture.captured_ns if picture is not None else 0
        return Served(jpeg(image, key[1] or self.quality), None, captured_ns, version)
