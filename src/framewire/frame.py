"""The frame envelope both transports carry, and the checks every frame passes.

A frame is raw JPEG bytes plus three pieces of metadata: the camera id, a
sequence number and the capture time in integer nanoseconds since the Unix
epoch. How each transport puts them on the wire lives with the transport
(transports/http.py, transports/redis.py); the README's "Wire contract"
section is the reference.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from dataclasses import dataclass, field

import numpy as np
import simplejpeg

CAMERA_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_INT64 = 2**63 - 1

JPEG_SOI = b"\xff\xd8"
JPEG_EOI = b"\xff\xd9"
MIN_BYTES_PER_PIXEL = 1 / 2000  # a real JPEG carries far more (a black 1080p frame: 1/170)


class WireError(ValueError):
    """A frame that breaks the wire contract; `reason` is a short metric label, `camera`
    the camera it names when the refusal is about that camera's frames (else empty)."""

    def __init__(self, reason: str, detail: str, camera: str = "") -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.camera = camera


@dataclass(frozen=True, slots=True)
class Frame:
    """One encoded frame and its metadata, as it travels between services."""

    camera: str
    seq: int
    captured_ns: int
    jpeg: bytes = field(repr=False)

    def age_seconds(self, now_ns: int | None = None) -> float:
        """Seconds since capture, on this host's clock; 0 for a capture time ahead of it."""
        now_ns = now_ns if now_ns is not None else time.time_ns()
        return max(0.0, (now_ns - self.captured_ns) / 1e9)


def check_captured(camera: str, captured_ns: int, now_ns: int, ahead: float, behind: float) -> None:
    """WireError `bad_timestamp` unless `captured_ns` is at most `ahead` seconds after
    `now_ns` and at most `behind` seconds before it (0, 2**63-1, seconds where nanoseconds
    belong, a clock a day off: none can be a frame's capture time)."""
    offset = (captured_ns - now_ns) / 1e9
    if offset > ahead:
        where = f"{offset:.3g} s ahead of the receiver's clock (at most {ahead:g} s)"
    elif -offset > behind:
        where = f"{-offset:.3g} s behind the receiver's clock (at most {behind:g} s)"
    else:
        return
    detail = f"camera {camera}: captured_ns {captured_ns} is {where}"
    raise WireError("bad_timestamp", detail, camera)


def parse_camera(value: str | None) -> str:
    """Validate a camera id (letters, digits, `_.-`, at most 64 characters)."""
    if value is None or value == "":
        raise WireError("missing_camera", "camera id is missing")
    if not CAMERA_PATTERN.match(value):
        raise WireError("bad_camera", "camera id must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
    return value


def parse_int(name: str, value: str | bytes | None) -> int:
    """Validate a non-negative 64-bit integer field such as seq or captured_ns."""
    if value is None or value in ("", b""):
        raise WireError(f"missing_{name}", f"{name} is missing")
    text = value.decode("ascii", errors="replace") if isinstance(value, bytes) else value
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise WireError(f"bad_{name}", f"{name} must be a non-negative integer")
    number = int(text)
    if number > MAX_INT64:
        raise WireError(f"bad_{name}", f"{name} must fit in 64 bits")
    return number


def check_jpeg(data: bytes) -> None:
    """Cheap structural check before decoding: SOI at the start, EOI at the end."""
    if not data:
        raise WireError("empty_body", "body is empty")
    if not data.startswith(JPEG_SOI):
        raise WireError("not_jpeg", "body is not a JPEG (no SOI marker)")
    if JPEG_EOI not in data[-16:]:
        raise WireError("truncated_jpeg", "JPEG is truncated (no EOI marker at the end)")


def b64decode(data: bytes) -> bytes:
    """Strict base64 (the article's formats); raises WireError."""
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise WireError("bad_base64", "image is not valid base64") from exc


def decode(jpeg: bytes, max_pixels: int, min_width: int | None = None) -> np.ndarray:
    """Decode JPEG bytes to a BGR image; WireError if they must not or cannot be decoded.

    The frame header is read first, so a JPEG over `max_pixels`, or claiming
    more pixels than its size could plausibly carry (a decompression bomb),
    is refused before any pixel is decoded. Decoding is strict: data cut short
    or corrupt is refused, never shown half grey. With `min_width` at most
    half the frame's width, the DCT is scaled down (1/2, 1/4 or 1/8) to the
    smallest size at least that wide: a fraction of the full decode's work.
    """
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(jpeg)
    except ValueError:
        raise WireError("undecodable", "JPEG has no readable frame header") from None
    pixels = width * height
    if pixels > max_pixels:
        raise WireError("too_many_pixels", f"JPEG is {width}x{height}, over {max_pixels} pixels")
    if pixels * MIN_BYTES_PER_PIXEL > len(jpeg):
        raise WireError(
            "implausible_size", f"{len(jpeg)} bytes cannot carry a {width}x{height} JPEG"
        )
    reduced = {}
    if min_width is not None and 0 < 2 * min_width <= width:
        reduced = {"min_width": min_width, "min_height": -(-height * min_width // width)}
    try:
        return simplejpeg.decode_jpeg(jpeg, colorspace="BGR", strict=True, **reduced)
    except ValueError as exc:
        raise WireError("undecodable", f"JPEG could not be decoded: {exc}") from None
