"""A camera's frame slot: its newest annotated frame, and the viewers waiting for the next.

The slot holds one frame (a newer one replaces it: the latest frame wins)
and a version that grows with every change; viewers wait on its condition
for a version they have not seen. Nothing is encoded here: the lock is held
only to swap or read the frame.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from framewire.variants import EncodeKey


@dataclass(frozen=True, slots=True)
class Picture:
    """One published frame: the annotated image and what came with it."""

    image: np.ndarray
    seq: int
    captured_ns: int
    received_at: float  # monotonic
    original: bytes | None = None  # the sender's JPEG, if the band splice may use it
    narrowed: bool = False  # decoded narrower than the frame, for narrow variants only
    under: np.ndarray | None = None  # the rows the strip covers, as they were before it

    def bare(self) -> np.ndarray:
        """The image without the strip: a copy with the rows under it put back."""
        if self.under is None:
            return self.image
        image = self.image.copy()
        image[: len(self.under)] = self.under
        return image


class FrameSlot:
    """The newest frame of one camera, its version, and a condition to wait on."""

    def __init__(self, stale_after: float) -> None:
        self.stale_after = stale_after
        self.closed = False
        self._cond = threading.Condition()
        self._picture: Picture | None = None
        self._version = 0

    def publish(self, picture: Picture) -> bool:
        """Make `picture` the newest frame and wake every waiting viewer; False once closed."""
        with self._cond:
            if self.closed:
                return False
            self._picture = picture
            self._version += 1
            self._cond.notify_all()
        return True

    def newest(self) -> tuple[Picture | None, int]:
        """The newest frame, fresh or not (None without one), and its version."""
        with self._cond:
            return self._picture, self._version

    def latest(self) -> tuple[np.ndarray | None, int]:
        """The newest image if it is fresh (else None) and its version."""
        picture, version = self.newest()
        return (picture.image if self.fresh(picture) else None), version

    def fresh(self, picture: Picture | None) -> bool:
        """Whether `picture` arrived within `stale_after` seconds."""
        return picture is not None and time.monotonic() - picture.received_at <= self.stale_after

    def live(self) -> bool:
        """Whether the newest frame is fresh."""
        return self.fresh(self.newest()[0])

    def age(self) -> float | None:
        """Seconds since the newest frame arrived, None without a frame."""
        picture, _ = self.newest()
        return None if picture is None else time.monotonic() - picture.received_at

    def fits(self, key: EncodeKey) -> bool:
        """Whether the newest image is wide enough for `key` (not decoded for narrower ones)."""
        picture, _ = self.newest()
        if picture is None or not picture.narrowed:
            return True
        return key[0] is not None and key[0] <= picture.image.shape[1]

    def wait(self, after_version: int, timeout: float) -> None:
        """Block until a frame newer than `after_version` arrives, `timeout` passes, or close."""
        with self._cond:
            if self._version == after_version and not self.closed:
                self._cond.wait(timeout)

    def pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less if the slot closes meanwhile."""
        end = time.monotonic() + seconds
        with self._cond:
            while not self.closed and (left := end - time.monotonic()) > 0:
                self._cond.wait(left)

    def release(self) -> None:
        """Let go of the newest frame (an idle default camera): viewers see "waiting for frames"."""
        with self._cond:
            self._picture = None
            self._version += 1
            self._cond.notify_all()

    def close(self) -> None:
        """End the slot: its waiting viewers wake and end, nothing more is published."""
        with self._cond:
            self.closed = True
            self._picture = None
            self._cond.notify_all()
