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
MAX_HEADERS = 16 * 1024  # a part's headers read back; more is not an MJPEG stream
MAX_PART = 32 * 1024 * 1024


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


# --- reading parts back (a replica relaying its owner's stream) ----------------------------


class PartReader:
    """multipart/x-mixed-replace bytes in (any chunking), complete parts out: (headers, body).

    A part ends after its Content-Length, else before the next boundary. ValueError for
    headers or a part over the caps (not an MJPEG stream).
    """

    def __init__(self, boundary: bytes = BOUNDARY) -> None:
        self.delimiter = b"--" + boundary
        self._buffer = bytearray()
        self._state = "boundary"
        self._headers: dict[str, str] = {}
        self._length = -1

    def feed(self, chunk: bytes) -> list[tuple[dict[str, str], bytes]]:
        buffer = self._buffer
        buffer += chunk
        parts: list[tuple[dict[str, str], bytes]] = []
        while True:
            if self._state == "boundary":
                at = buffer.find(self.delimiter)
                if at < 0:  # keep what may be the start of a boundary split across chunks
                    del buffer[: max(0, len(buffer) - len(self.delimiter) + 1)]
                    break
                eol = buffer.find(b"\r\n", at + len(self.delimiter))
                if eol < 0:
                    break
                del buffer[: eol + 2]
                self._state = "headers"
            elif self._state == "headers":
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEADERS:
                        raise ValueError("part headers too long")
                    break
                self._headers = parse_headers(bytes(buffer[:end]))
                del buffer[: end + 4]
                length = self._headers.get("content-length", "")
                self._length = int(length) if length.isdigit() else -1
                if self._length > MAX_PART:
                    raise ValueError("part too large")
                self._state = "body"
            else:
                if self._length >= 0:
                    end = self._length if len(buffer) >= self._length else -1
                else:
                    end = buffer.find(b"\r\n" + self.delimiter)
                if end < 0:
                    if len(buffer) > MAX_PART:
                        raise ValueError("part too large")
                    break
                parts.append((self._headers, bytes(buffer[:end])))
                del buffer[:end]
                self._state = "boundary"
        return parts


def parse_headers(block: bytes) -> dict[str, str]:
    """A part's header lines, by lower-case name."""
    headers = {}
    for line in block.decode("latin-1").split("\r\n"):
        name, colon, value = line.partition(":")
        if colon and name.strip():
            headers[name.strip().lower()] = value.strip()
    return headers


def frame_number(headers: dict[str, str], name: str) -> int | None:
    value = headers.get(name.lower(), "")
    return int(value) if value.isdigit() else None


def reframe(headers: dict[str, str], body: bytes) -> bytes:
    """A part read from an owner, framed again as mjpeg.part framed it: the same bytes."""
    seq = frame_number(headers, HEADER_SEQ)
    return part(body, seq, frame_number(headers, HEADER_CAPTURED_NS) if seq else None)
