"""Stream variants: the bounded sets of width, fps, quality and strip a viewer may ask for.

A variant is `/stream/<camera>.mjpg?width=640&fps=10&quality=70&strip=0`. Width,
quality and strip make its encode key (EncodeKey): the newest frame is encoded once
per key in use and shared by every viewer of that key. The fps is a pacing of
each viewer on a clock grid all viewers share (see mjpeg.stream), so viewers
of one key at 5, 10 or 30 fps still share each encode. Only the listed values
are accepted, so no client can make the server encode arbitrary sizes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

# What a picture is encoded as: (width, quality, strip); None means the frame's own width,
# the receiver's --stream-quality; strip False: the picture without the status strip.
# FULL is the full-size picture with the strip (what the grid's watchers stand for).
EncodeKey = tuple[int | None, int | None, bool]
FULL: EncodeKey = (None, None, True)


def key_label(key: EncodeKey) -> str:
    """The `variant` label of an encode key: `full`, `640px`, `640px-q50`, `full-nostrip`."""
    width, quality, strip = key
    name = f"{width}px" if width else "full"
    name = name if quality is None else f"{name}-q{quality}"
    return name if strip else f"{name}-nostrip"


def scaled(image: np.ndarray, width: int | None) -> np.ndarray:
    """`image` at most `width` pixels wide, aspect ratio kept (INTER_AREA); never upscaled."""
    height, own = image.shape[:2]
    if width is None or width >= own:
        return image
    size = (width, max(1, round(height * width / own)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


WIDTHS = (320, 640, 960, 1280)  # or "full": the frame's own width (never upscaled)
FPS = (1, 5, 10, 15, 30)  # or "full": every frame the viewer can keep up with
QUALITIES = (50, 70, 80)  # or absent: the receiver's --stream-quality
STRIPS = (0, 1)  # or absent: the receiver's --strip
GRID_FPS = (1, 2, 5, 10)
GRID_DEFAULT_FPS = 5


class BadVariant(Exception):
    """A variant parameter outside its set; `detail` names it and the allowed values."""

    reason = "bad_variant"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Variant:
    width: int | None = None  # None: full width
    fps: int | None = None  # None: every frame
    quality: int | None = None  # None: the receiver's --stream-quality
    strip: bool = True  # False: the camera's picture without the status strip

    @property
    def key(self) -> EncodeKey:
        return (self.width, self.quality, self.strip)


def _choice(args: Mapping[str, str], name: str, allowed: tuple[int, ...], full: bool) -> int | None:
    value = args.get(name)
    if value is None or (full and value == "full"):
        return None
    if value.isdigit() and int(value) in allowed:
        return int(value)
    listed = ", ".join([*map(str, allowed), *(["full"] if full else [])])
    raise BadVariant(f"{name}={value[:20]!r} is not one of {listed}")


def parse_strip(args: Mapping[str, str], default: bool) -> bool:
    """The `strip` of a stream or snapshot request (`0` or `1`; absent: `default`)."""
    value = _choice(args, "strip", STRIPS, False)
    return default if value is None else bool(value)


def parse(args: Mapping[str, str], strip: bool = True) -> Variant:
    """The variant a stream request asks for (`strip`: the receiver's default);
    BadVariant for a value outside its set."""
    return Variant(
        _choice(args, "width", WIDTHS, True),
        _choice(args, "fps", FPS, True),
        _choice(args, "quality", QUALITIES, False),
        parse_strip(args, strip),
    )


def parse_grid_fps(args: Mapping[str, str]) -> int:
    """The `fps` of a /grid.mjpg request (default GRID_DEFAULT_FPS); BadVariant outside GRID_FPS."""
    return _choice(args, "fps", GRID_FPS, False) or GRID_DEFAULT_FPS
