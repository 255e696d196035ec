"""The grid's tiles of cameras other replicas own: read from the owner, decoded small.

A remote camera's tile comes from its owner's stream of the narrowest variant
at least as wide as the tile (`tile_width`), at TILE_FPS, one reader thread
per remote camera (`TileReader`) and only while the grid is watched
(`RemoteTiles`); each newest part is decoded at the tile's size (see
docs/scaling.md, "Relay").
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable
from urllib.parse import urlencode

import cv2
import numpy as np
import requests

from framewire.mjpeg import PartReader, frame_number
from framewire.owners import Member
from framewire.relay import (
    RETRY_SECONDS,
    Relay,
    RelayError,
    is_mjpeg,
    shut,
    stream_path,
)
from framewire.transports.http import HEADER_SEQ
from framewire.variants import GRID_FPS, WIDTHS

TILE_FPS = max(GRID_FPS)  # a remote grid tile's stream from its owner


def tile_width(width: int) -> int | None:
    """The narrowest variant width at least `width` (None: full size) for a grid tile."""
    return next((w for w in WIDTHS if w >= width), None)


class TileReader(threading.Thread):
    """A remote camera's newest picture for the grid: the owner's stream of a narrow variant,
    each newest part decoded (a tile's size, so little work)."""

    def __init__(self, relay: Relay, camera: str, member: Member, width: int | None) -> None:
        super().__init__(daemon=True, name=f"framewire-tile-{camera}")
        self.relay = relay
        self.camera = camera
        self.member = member
        self.width = width
        self.auth: str | None = None
        self.stopping = threading.Event()
        self._image: tuple[np.ndarray, float] | None = None  # (image, monotonic when read)
        self._response: requests.Response | None = None

    def newest(self, max_age: float) -> np.ndarray | None:
        """The newest picture, if read within `max_age` seconds (else None: no signal)."""
        held = self._image
        if held is None or time.monotonic() - held[1] > max_age:
            return None
        return held[0]

    def run(self) -> None:
        query = urlencode({"width": self.width or "full", "fps": TILE_FPS, "strip": 1})
        broken = (RelayError, requests.RequestException, ValueError, OSError, AttributeError)
        while not self.stopping.is_set():
            with contextlib.suppress(*broken):  # the owner's stream broke: read it again
                self._read(query)
            self.stopping.wait(RETRY_SECONDS)

    def _read(self, query: str) -> None:
        response = self.relay.get(
            self.member, stream_path(self.camera), query, self.auth, stream=True
        )
        self._response = response
        try:
            if self.stopping.is_set() or response.status_code != 200 or not is_mjpeg(response):
                return
            reader = PartReader()
            for chunk in response.iter_content(chunk_size=None):
                parts = reader.feed(chunk)
                if self.stopping.is_set():
                    return
                if parts:  # the newest part read wins
                    headers, body = parts[-1]
                    image = None
                    if frame_number(headers, HEADER_SEQ) is not None:  # else: no signal there
                        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
                    self._image = (image, time.monotonic()) if image is not None else None
        finally:
            self.relay.release(response)

    def stop(self) -> None:
        self.stopping.set()
        if self._response is not None:
            shut(self._response)


class RemoteTiles:
    """The grid's pictures of remote cameras: one TileReader per camera while it is shown."""

    def __init__(self, relay: Relay, stale_after: float) -> None:
        self.relay = relay
        self.stale_after = stale_after
        self.auth: str | None = None  # the grid viewers' credentials, for the owners
        self._readers: dict[str, TileReader] = {}
        self._lock = threading.Lock()

    def picture(self, camera: str, owner: Member, width: int) -> tuple[np.ndarray | None, float]:
        """The newest picture of `camera` from `owner` for a tile `width` wide (None: no
        signal), and the camera's fps at its owner; its reader starts on the first call."""
        variant = tile_width(width)
        with self._lock:
            reader = self._readers.get(camera)
            if reader is None or (reader.member.key, reader.width) != (owner.key, variant):
                if reader is not None:
                    reader.stop()
                reader = TileReader(self.relay, camera, owner, variant)
                reader.auth = self.auth
                if not self.relay.closed:
                    reader.start()
                self._readers[camera] = reader
        stats = self.relay.stats_of([owner], wait=False).get(owner.key) or {}
        fps = (stats.get("cameras") or {}).get(camera, {}).get("fps") or 0.0
        return reader.newest(self.stale_after), float(fps)

    def keep(self, cameras: Iterable[str]) -> None:
        """Stop the readers of cameras no longer shown as remote tiles."""
        keep = set(cameras)
        with self._lock:
            for camera in [c for c in self._readers if c not in keep]:
                self._readers.pop(camera).stop()

    def stop(self, join: float = 0.0) -> None:
        """Stop every reader (the grid's last viewer left, or shutdown)."""
        with self._lock:
            readers = list(self._readers.values())
            self._readers.clear()
        for reader in readers:
            reader.stop()
        for reader in readers:
            if join and reader.is_alive():
                reader.join(join)
