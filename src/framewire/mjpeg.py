"""MJPEG framing: `multipart/x-mixed-replace` parts, and the generator each viewer reads.

Each part is followed at once by the next boundary, so a browser shows a
frame as soon as it arrives (it does not wait for the next part to begin).
"""

from __future__ import annotations

from collections.abc import Iterator

from framewire.hub import Channel
from framewire.transports.http import HEADER_CAPTURED_NS, HEADER_SEQ

BOUNDARY = b"framewireframe"
CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}"


def part(jpeg: bytes, seq: int | None = None, captured_ns: int = 0) -> bytes:
    """One JPEG part, closed by the boundary.

    A frame (with a `seq`) carries `X-Framewire-Seq` and `X-Framewire-Captured-Ns`
    part headers, so a client can tell each picture's capture time (the page
    measures capture-to-display latency with them); "no signal" carries none.
    """
    meta = b""
    if seq is not None:
        meta = b"%s: %d\r\n%s: %d\r\n" % (
            HEADER_SEQ.encode(),
            seq,
            HEADER_CAPTURED_NS.encode(),
            captured_ns,
        )
    return (
        b"Content-Type: image/jpeg\r\n"
        + meta
        + b"Content-Length: %d\r\n\r\n" % len(jpeg)
        + jpeg
        + b"\r\n--"
        + BOUNDARY
        + b"\r\n"
    )


def stream(channel: Channel, keepalive: float) -> Iterator[bytes]:
    """A viewer's parts: each newest frame once, skipping what it was too slow for.

    On a still scene the last frame is re-sent every `keepalive` seconds; the
    "no signal" picture is re-sent as often while the camera is silent. Ends
    when the channel closes (camera forgotten, or shutdown).
    """
    yield b"--" + BOUNDARY + b"\r\n"
    version = -1
    while not channel.closed:
        served = channel.current()
        if served.version == version and served.seq is not None:
            channel.wait(version, keepalive)
            if channel.closed:
                return
            served = channel.current()  # a newer frame, or the same one as keepalive
        version = served.version
        yield part(served.jpeg, served.seq, served.captured_ns)
        if served.seq is None:  # no signal: poll for the source coming back
            channel.wait(version, keepalive)
