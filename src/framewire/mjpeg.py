"""MJPEG framing: `multipart/x-mixed-replace` parts, and the generators viewers read.

Each part is followed at once by the next boundary, so a browser shows a
frame as soon as it arrives (it does not wait for the next part to begin).
A part of a camera's frame carries the frame's `X-Framewire-Seq` and
`X-Framewire-Captured-Ns` (capture time, ns since the epoch) beside its
Content-Type and Content-Length, so a page reading the stream with a
streaming fetch can tell each frame's capture-to-display latency.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

from framewire.channel import Channel
from framewire.grid import Grid
from framewire.transports.http import HEADER_CAPTURED_NS, HEADER_SEQ
from framewire.variants import FULL, EncodeKey

BOUNDARY = b"framewireframe"
CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}"


def part(jpeg: bytes, seq: int | None = None, captured_ns: int | None = None) -> bytes:
    """One JPEG part, closed by the boundary; with the frame's seq and capture time if given."""
    headers = b"Content-Type: image/jpeg\r\n"
    if seq is not None:
        headers += b"%s: %d\r\n" % (HEADER_SEQ.encode(), seq)
    if captured_ns is not None:
        headers += b"%s: %d\r\n" % (HEADER_CAPTURED_NS.encode(), captured_ns)
    headers += b"Content-Length: %d\r\n" % len(jpeg)
    return headers + b"\r\n" + jpeg + b"\r\n--" + BOUNDARY + b"\r\n"


def until_tick(fps: int) -> float:
    """Seconds to the next tick of a clock grid of `fps` ticks a second, the same for all."""
    now = time.monotonic()
    return (math.floor(now * fps) + 1) / fps - now


def stream(
    channel: Channel, keepalive: float, key: EncodeKey = FULL, fps: int | None = None
) -> Iterator[bytes]:
    """A viewer's parts: each newest frame once (encoded as `key`), skipping what it missed.

    With `fps`, the viewer takes the newest frame at most `fps` times a second,
    on the ticks of a clock grid every viewer shares, so viewers of one key
    take the same frames and share their encodes. On a still scene the last
    frame is re-sent every `keepalive` seconds; the "no signal" picture is
    re-sent as often while the camera is silent. Ends when the channel closes
    (camera forgotten, or shutdown).
    """
    yield b"--" + BOUNDARY + b"\r\n"
    slot, cache = channel.slot, channel.cache
    # Frames decoded for narrower viewers (those already in flight when this one came) are not
    # for it: wait, at most a keepalive, for the first decoded wide enough.
    _, version = slot.latest()
    deadline = time.monotonic() + keepalive
    while not slot.fits(key) and not slot.closed and (left := deadline - time.monotonic()) > 0:
        slot.wait(version, left)
        _, version = slot.latest()
    version = -1
    while not slot.closed:
        if fps:
            slot.pause(until_tick(fps))
            if slot.closed:
                return
        served = cache.get(key)
        if served.version == version and served.seq is not None:
            slot.wait(version, keepalive)
            if slot.closed:
                return
            served = cache.get(key)  # a newer frame, or the same one as keepalive
        version = served.version
        if served.seq is None:
            yield part(served.jpeg)
            slot.wait(version, keepalive)  # no signal: poll for the source coming back
        else:
            yield part(served.jpeg, served.seq, served.captured_ns)


def grid_stream(grid: Grid, fps: int) -> Iterator[bytes]:
    """A grid viewer's parts: the shared mosaic of each tick of `fps`, until shutdown."""
    yield b"--" + BOUNDARY + b"\r\n"
    while not grid.closed:
        yield part(grid.current(fps).jpeg)
        grid.pause(fps)
