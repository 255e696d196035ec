"""The grid: every camera's newest frame in one labelled mosaic, for /grid.mjpg.

Composed on demand, once per tick of a clock grid all viewers share
(`tick = floor(monotonic * fps)`): the first viewer to reach a tick composes
and encodes the mosaic, every other viewer of that fps gets the same JPEG.
No thread of its own: nothing runs while nobody watches, and the last viewer
to leave lets go of the mosaic. At most MAX_TILES cameras (by camera id),
GRID_WIDTH pixels wide, 16:9 tiles; each tile is labelled with its camera,
transport and fps, or "NO SIGNAL" when the camera's newest frame is stale.
A camera another replica serves (`remote`) has its tile from its owner
(`RemoteTiles`, relay_tiles.py: a narrow variant of the owner's stream, read only
while the grid is watched), labelled with the owner's fps.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

import cv2
import numpy as np

from framewire.channel import Channel, Settings
from framewire.encodes import Served, jpeg
from framewire.overlay import no_signal
from framewire.owners import Member
from framewire.seats import Seats
from framewire.variants import FULL
from framewire.watchers import Watchers

MAX_TILES = 16
GRID_WIDTH = 1280
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def layout(count: int) -> tuple[int, int, int, int]:
    """(columns, rows, tile width, tile height) for `count` tiles (at least one)."""
    count = max(1, min(count, MAX_TILES))
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    width = GRID_WIDTH // columns
    return columns, rows, width, width * 9 // 16


def fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` scaled into a `width` x `height` black tile, aspect ratio kept, centred."""
    tile = np.zeros((height, width, 3), np.uint8)
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (height - size[1]) // 2, (width - size[0]) // 2
    tile[top : top + size[1], left : left + size[0]] = small
    return tile


def label(tile: np.ndarray, text: str, alarm: bool = False) -> None:
    """Write `text` on a dark strip at the bottom of `tile` (red when `alarm`)."""
    height, width = tile.shape[:2]
    scale = max(width / 640, 0.35)
    strip = int(30 * scale)
    cv2.rectangle(tile, (0, height - strip), (width, height), (0, 0, 0), -1)
    colour = (60, 60, 230) if alarm else (255, 255, 255)
    origin = (int(8 * scale), height - int(9 * scale))
    cv2.putText(tile, text, origin, _FONT, 0.7 * scale, colour, 1, cv2.LINE_AA)


class RemoteTiles(Protocol):
    """Pictures of the cameras other replicas serve (relay_tiles.RemoteTiles)."""

    def picture(self, camera: str, owner: Member, width: int) -> tuple[np.ndarray | None, float]:
        """The newest picture for a tile `width` wide (None: no signal), and the camera's fps."""
        ...

    def keep(self, cameras: Iterable[str]) -> None:
        """Only these cameras are still shown as remote tiles."""
        ...

    def stop(self, join: float = 0.0) -> None:
        """Nobody watches the grid any more."""
        ...


class Grid:
    """The shared mosaic of `channels()`, composed at most once per tick and fps.

    Its viewers take seats like any stream and watch every camera at full
    size (`watchers`, which each camera's watchers also count).
    """

    def __init__(
        self,
        channels: Callable[[], list[Channel]],
        settings: Settings,
        seats: Seats,
        remote: Callable[[], dict[str, Member]] | None = None,
        tiles: RemoteTiles | None = None,
    ) -> None:
        self.channels = channels
        self.remote = remote  # the cameras served from another replica, with their owners
        self.tiles = tiles
        self.settings = settings
        self.seats = seats
        self.watchers = Watchers()
        self._lock = threading.Lock()
        self._mosaics: dict[int, Served] = {}  # fps -> the mosaic of its latest tick
        self._stop = threading.Event()

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """End every grid stream (at shutdown)."""
        self._stop.set()

    @contextmanager
    def viewer(self) -> Iterator[Grid]:
        """A grid stream: a seat and a watch of every camera while it is open; ViewerLimit at
        the cap or at shutdown. The last one to leave lets go of the mosaics."""
        self.seats.take()
        self.watchers.add()
        try:
            yield self
        finally:
            if self.watchers.remove():
                with self._lock:
                    self._mosaics.clear()
                    if self.tiles is not None:
                        self.tiles.stop()
            self.seats.give_back()

    def pause(self, fps: int) -> None:
        """Sleep until the next tick of `fps` (or the grid closes)."""
        now = time.monotonic()
        self._stop.wait((math.floor(now * fps) + 1) / fps - now)

    def current(self, fps: int) -> Served:
        """The mosaic of the current tick of `fps`, composed by the first viewer to ask."""
        tick = math.floor(time.monotonic() * fps)
        with self._lock:
            cached = self._mosaics.get(fps)
            if cached is not None and cached.version == tick:
                return cached
            data = jpeg(self.compose(), self.settings.quality)
            self.settings.metrics.grid_encodes.labels(self.settings.transport).inc()
            served = Served(data, tick, time.time_ns(), tick)
            if self.watchers.watched(FULL):
                self._mosaics[fps] = served
            return served

    def compose(self) -> np.ndarray:
        """The mosaic now: up to MAX_TILES cameras by id, each tile labelled."""
        channels = {c.camera: c for c in self.channels()}
        remote = self.remote() if self.remote is not None and self.tiles is not None else {}
        names = sorted(set(channels) | set(remote))[:MAX_TILES]
        columns, rows, width, height = layout(len(names))
        mosaic = np.zeros((rows * height, columns * width, 3), np.uint8)
        transport = self.settings.transport.upper()
        for index, camera in enumerate(names):
            if camera in remote and self.tiles is not None:
                image, fps = self.tiles.picture(camera, remote[camera], width)
                detail = "waiting for its owner"
            else:
                channel = channels[camera]
                image, _ = channel.slot.latest()
                fps = channel.figures.fps()
                waiting = channel.slot.age() is None
                detail = "waiting for frames" if waiting else "last frame too old"
            if image is None:
                tile = no_signal(width, height, camera, detail)
                label(tile, f"{camera}  {transport}  NO SIGNAL", alarm=True)
            else:
                tile = fit(image, width, height)
                label(tile, f"{camera}  {transport}  {fps:.1f} fps")
            row, column = divmod(index, columns)
            mosaic[row * height : (row + 1) * height, column * width : (column + 1) * width] = tile
        if self.tiles is not None:
            self.tiles.keep(c for c in names if c in remote)
        return mosaic
