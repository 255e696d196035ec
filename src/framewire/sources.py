"""Frame sources behind one interface, and the grab thread that drains them.

`open_source(spec)` picks the source: `synthetic` (the default test
pattern), a video file (looped), an RTSP/HTTP URL or a device index. The
`Grabber` thread reads the source as fast as it delivers, keeps only the
newest frame, judges staleness by the time since the last good frame, and
releases and reopens a dead source with backoff.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from framewire.config import SYNTHETIC_PHASES
from framewire.mailbox import Mailbox
from framewire.resilience import Backoff, UpDown, Worker
from framewire.urls import redact

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """The source cannot be opened."""


@dataclass(frozen=True, slots=True)
class Captured:
    """A raw frame and the wall-clock time it was captured."""

    image: np.ndarray
    captured_ns: int


class Source(ABC):
    """A frame source. `read` returns None when the source has failed.

    A `live` source (a camera) must be drained as fast as it delivers; a
    source that is not live (the unthrottled synthetic pattern) makes a frame
    only when the previous one was taken, so no work is thrown away.
    """

    description: str
    live: bool = True

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> np.ndarray | None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what `open` acquired."""


class Pacer:
    """Sleeps so that successive `wait` calls return `fps` times a second (0: unthrottled).

    `phase` (seconds, within one period) puts the ticks on the monotonic
    clock's grid of periods, at that offset: two pacers of the same rate with
    the same phase tick at the same instants, whenever each was made, in any
    process of the machine. None starts the schedule now.
    """

    def __init__(self, fps: float, phase: float | None = None) -> None:
        self._period = 1.0 / fps if fps > 0 else 0.0
        now = time.monotonic()
        self.phase = 0.0
        self._next = now
        if self._period:
            self.phase = (now if phase is None else phase) % self._period
            self._next = self.phase + math.ceil((now - self.phase) / self._period) * self._period

    def wait(self) -> None:
        if not self._period:
            return
        now = time.monotonic()
        if self._next > now:
            time.sleep(self._next - now)
        # Never bank time: after a stall, skip the ticks missed instead of bursting, in phase.
        self._next += self._period
        behind = time.monotonic() - self._period - self._next
        if behind > 0:
            self._next += math.ceil(behind / self._period) * self._period


class SyntheticSource(Source):
    """A moving test pattern with a burned-in clock and frame counter.

    The textured background gives JPEG sizes like a real scene's (about 80 KB
    at 1280x720, quality 80), so transport figures are realistic.
    """

    def __init__(
        self, width: int = 1280, height: int = 720, fps: float = 30.0, phase: str = "spread"
    ) -> None:
        if phase not in SYNTHETIC_PHASES:
            raise ValueError(f"phase must be one of {', '.join(SYNTHETIC_PHASES)}")
        self.width, self.height, self.fps = width, height, fps
        self.description = f"synthetic {width}x{height}@{fps:g}"
        self._background = self._make_background(width, height)
        # Real cameras free-run at unrelated phases: `spread` draws this camera's at random
        # within one period; `aligned` (the worst case) puts every camera's frames at one instant.
        period = 1.0 / fps if fps > 0 else 0.0
        self.phase = random.uniform(0.0, period) if phase == "spread" else 0.0
        self._pacer = Pacer(fps, self.phase)
        self._count = 0

    @staticmethod
    def _make_background(width: int, height: int) -> np.ndarray:
        rng = np.random.default_rng(7)
        noise = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        texture = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
        x = np.linspace(0, 255, width, dtype=np.float32)
        y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
        gradient = np.dstack(
            [
                np.broadcast_to(x, (height, width)),
                np.broadcast_to(y, (height, width)),
                np.full((height, width), 128, np.float32),
            ]
        )
        image = (0.8 * gradient + 0.2 * texture).astype(np.uint8)
        for gx in range(0, width, max(width // 16, 1)):
            cv2.line(image, (gx, 0), (gx, height), (40, 40, 40), 1)
        for gy in range(0, height, max(height // 9, 1)):
            cv2.line(image, (0, gy), (width, gy), (40, 40, 40), 1)
        return image

    @property
    def live(self) -> bool:  # type: ignore[override]
        return self.fps > 0

    def open(self) -> None:
        self._pacer = Pacer(self.fps, self.phase)

    def read(self) -> np.ndarray:
        self._pacer.wait()
        self._count += 1
        n, w, h = self._count, self.width, self.height
        image = self._background.copy()
        scale = max(h / 720, 0.25)
        cx = int((np.sin(n / 40) * 0.4 + 0.5) * w)
        cy = int((np.cos(n / 55) * 0.35 + 0.5) * h)
        cv2.circle(image, (cx, cy), int(60 * scale), (0, 200, 255), -1)
        bx = int((n * 6 * scale) % (w + 200)) - 100
        cv2.rectangle(
            image,
            (bx, int(h * 0.6)),
            (bx + int(120 * scale), int(h * 0.6 + 90 * scale)),
            (255, 80, 40),
            -1,
        )
        stamp = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"
        for text, row in ((stamp, 0.9), (f"frame {n}", 0.97)):
            org = (int(20 * scale), int(h * row))
            for color, thickness in (((0, 0, 0), 6), ((255, 255, 255), 2)):  # outline, fill
                cv2.putText(
                    image,
                    text,
                    org,
                    cv2.FONT_HERSHEY_SIMPLEX,
                    1.4 * scale,
                    color,
                    int(thickness * scale) + 1,
                    cv2.LINE_AA,
                )
        return image


class CaptureSource(Source):
    """A video file (looped), an RTSP/HTTP URL or a device index, through OpenCV.

    URLs and files use the FFmpeg backend with open and read timeouts, so a
    frozen camera makes `read` fail instead of blocking for half a minute.
    """

    def __init__(
        self, spec: str, open_timeout: float = 5.0, read_timeout: float = 5.0, fps: float = 30.0
    ) -> None:
        self.spec = spec
        self.device = device_index(spec)
        self.is_file = self.device is None and "://" not in spec
        self.description = f"device {spec}" if self.device is not None else redact(spec)
        self._timeouts = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(open_timeout * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(read_timeout * 1000),
        ]
        self._fps = fps
        self._cap: cv2.VideoCapture | None = None
        self._pacer = Pacer(0)

    def open(self) -> None:
        if self.is_file and not Path(self.spec).is_file():
            raise SourceError(f"no such video file: {self.spec}")
        if self.spec.startswith("rtsp"):
            # RTSP over TCP: a camera that dies closes the connection, so the loss shows at
            # once instead of after the read timeout; it also passes NAT and firewalls.
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        if self.device is not None:
            cap = cv2.VideoCapture(self.device)
        else:
            cap = cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG, self._timeouts)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.description}")
        self._cap = cap
        if self.is_file:  # a file plays at its own rate, not as fast as it decodes
            file_fps = cap.get(cv2.CAP_PROP_FPS)
            self._pacer = Pacer(file_fps if 0 < file_fps <= 240 else self._fps)

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        self._pacer.wait()
        ok, image = self._cap.read()
        if not ok and self.is_file:  # end of file: loop
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._cap.read()
        return image if ok else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def device_index(spec: str) -> int | None:
    """The V4L2 device index of `0` or `/dev/video0` (both are device 0), else None."""
    number = spec.removeprefix("/dev/video")
    return int(number) if number.isdigit() and number.isascii() else None


def open_source(
    spec: str,
    width: int,
    height: int,
    fps: float,
    open_timeout: float,
    read_timeout: float,
    phase: str = "spread",
) -> Source:
    """The source for a `--source` value: `synthetic`, a file path, a URL or a device index.

    `width` and `height` size the synthetic pattern only (`wire_size` of SYNTHETIC_SIZE); the
    sender resizes every other source's pictures (`resized`).

    `phase` is the synthetic pattern's (`spread` or `aligned`; see `SyntheticSource`).
    """
    if spec == "synthetic":
        return SyntheticSource(*wire_size(SYNTHETIC_SIZE, width, height), fps, phase)
    return CaptureSource(spec, open_timeout, read_timeout, fps)


SYNTHETIC_SIZE = (1280, 720)  # the pattern's (width, height) when --width and --height are 0


def wire_size(own: tuple[int, int], width: int, height: int) -> tuple[int, int]:
    """The (width, height) sent of a picture `own` (width, height) in size.

    Both set: that size. One set (the other 0): the other follows `own`'s aspect ratio.
    Neither: `own`, as the source sends.
    """
    if width and height:
        return width, height
    if width:
        return width, max(1, round(own[1] * width / own[0]))
    if height:
        return max(1, round(own[0] * height / own[1])), height
    return own


def resized(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` at its wire size (`wire_size`): unchanged when it already is, else resized once
    (INTER_AREA down, INTER_LINEAR up)."""
    own = (image.shape[1], image.shape[0])
    size = wire_size(own, width, height)
    if size == own:
        return image
    shrink = size[0] * size[1] < own[0] * own[1]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class Grabber:
    """Drains a source on its own thread into a one-slot mailbox.

    Opens the source, reads until it fails, then releases it and reopens with
    capped exponential backoff. `on_state(up)` is called once per state
    change; `on_reconnect()` each time a reopen is attempted.
    """

    def __init__(
        self,
        source: Source,
        on_state: Callable[[bool], None],
        on_reconnect: Callable[[], None],
        on_drop: Callable[[Captured], None],
        stale_after: float = 5.0,
        backoff_max: float = 2.0,
        what: str = "source",
    ) -> None:
        self.source = source
        self.stale_after = stale_after
        self.frames: Mailbox[Captured] = Mailbox(on_drop)
        self.last_frame_at = 0.0  # monotonic time of the last good frame
        self.state = UpDown(what, source.description, on_state, logger=log)
        self._on_reconnect = on_reconnect
        self._backoff = Backoff(0.25, backoff_max)
        # A blocked read ends within the source's own read timeout.
        self._worker = Worker("grabber", self._run, join_timeout=stale_after + 2.0)

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop(wake=self.frames.close)

    def check_stale(self) -> None:
        """Mark the source down when no frame came for `stale_after` s (a read may still block)."""
        age = time.monotonic() - self.last_frame_at
        if self.state.up and age > self.stale_after:
            self.state.set(False, f"no frame for {age:.1f} s")

    def _run(self) -> None:
        stopping, first = self._worker.stopping, True
        while not stopping.is_set():
            if not first:
                self._on_reconnect()
            first = False
            try:
                self.source.open()
            except Exception as exc:  # OpenCV raises cv2.error as well as SourceError
                self.state.set(False, str(exc))
                self._backoff.wait(stopping)
                continue
            try:
                self._drain(stopping)
            finally:
                self.source.close()
            self._backoff.wait(stopping)

    def _drain(self, stopping: threading.Event) -> None:
        """Read frames until the source fails or the thread is asked to stop."""
        while not stopping.is_set():
            started = time.monotonic()
            try:
                image = self.source.read()
            except Exception as exc:  # a backend error is a failed read, not a crash
                log.debug("read raised %s", type(exc).__name__)
                image = None
            if image is None:
                self.state.set(False, "read failed")
                return
            if time.monotonic() - started >= self.stale_after:
                # FFmpeg hands back the last picture when its read timeout fires.
                self.state.set(False, f"no new frame for {self.stale_after:g} s")
                return
            self.last_frame_at = time.monotonic()
            self.state.set(True)
            self._backoff.reset()
            self.frames.put(Captured(image, time.time_ns()))
            if not self.source.live:
                self.frames.wait_taken(timeout=1.0)
