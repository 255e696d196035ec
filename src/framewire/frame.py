"""The frame envelope and the wire contract both transports speak.

A frame on the wire is raw JPEG bytes plus three pieces of metadata: the
camera id, a sequence number and the capture time in integer nanoseconds
since the Unix epoch. HTTP carries the metadata in headers, Redis in stream
fields beside the bytes. The README's "Wire contract" section is the reference.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

CAMERA_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_INT64 = 2**63 - 1

# HTTP: POST /frames, body = JPEG, these headers.
CONTENT_TYPE = "image/jpeg"
HEADER_CAMERA = "X-Framewire-Camera"
HEADER_SEQ = "X-Framewire-Seq"
HEADER_CAPTURED_NS = "X-Framewire-Captured-Ns"

# Redis: one stream per camera, entries with these fields.
STREAM_PREFIX = "framewire:frames:"
FIELD_JPEG = b"jpeg"
FIELD_SEQ = b"seq"
FIELD_CAPTURED_NS = b"captured_ns"

# Comparison modes, for the benchmark and to reproduce the original article.
HTTP_MODES = ("raw", "form-base64")
REDIS_MODES = ("stream", "pubsub", "set-publish")
FORM_TYPE = "application/x-www-form-urlencoded"  # HTTP form-base64: fields below
FORM_IMAGE = "image"  # base64 JPEG; camera, seq and captured_ns ride as form fields too
PUBSUB_PREFIX = "framewire:pubsub:"  # Redis pubsub: PUBLISH "<seq> <captured_ns>\n" + JPEG
LATEST_PREFIX = "framewire:latest:"  # Redis set-publish: SET "<seq> <captured_ns> <base64>"
NOTIFY_PREFIX = "framewire:notify:"  # ... then PUBLISH the key's name here

JPEG_SOI = b"\xff\xd8"
JPEG_EOI = b"\xff\xd9"


class WireError(ValueError):
    """A frame that breaks the wire contract; `reason` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Frame:
    """One encoded frame and its metadata, as it travels between services."""

    camera: str
    seq: int
    captured_ns: int
    jpeg: bytes = field(repr=False)

    def age_seconds(self, now_ns: int | None = None) -> float:
        """Seconds since capture, on this host's clock."""
        return ((now_ns if now_ns is not None else time.time_ns()) - self.captured_ns) / 1e9

    def http_headers(self) -> dict[str, str]:
        """The HTTP headers that carry this frame's metadata."""
        return {
            "Content-Type": CONTENT_TYPE,
            HEADER_CAMERA: self.camera,
            HEADER_SEQ: str(self.seq),
            HEADER_CAPTURED_NS: str(self.captured_ns),
        }

    def stream_fields(self) -> dict[bytes, bytes]:
        """The Redis stream fields for this frame."""
        return {
            FIELD_JPEG: self.jpeg,
            FIELD_SEQ: str(self.seq).encode(),
            FIELD_CAPTURED_NS: str(self.captured_ns).encode(),
        }

    def form_fields(self) -> dict[str, str]:
        """The article's HTTP form: base64 JPEG plus metadata fields."""
        return {
            FORM_IMAGE: base64.b64encode(self.jpeg).decode(),
            "camera": self.camera,
            "seq": str(self.seq),
            "captured_ns": str(self.captured_ns),
        }

    def pubsub_message(self) -> bytes:
        """One PUBLISH payload: a metadata line, then the raw JPEG."""
        return b"%d %d\n" % (self.seq, self.captured_ns) + self.jpeg

    def latest_value(self) -> bytes:
        """The article's SET value: metadata, then the base64 JPEG."""
        return b"%d %d " % (self.seq, self.captured_ns) + base64.b64encode(self.jpeg)


def stream_key(camera: str) -> str:
    """The Redis stream that carries one camera's frames."""
    return STREAM_PREFIX + camera


def camera_from_key(key: bytes | str) -> str:
    """The camera id of a stream key; raises WireError for a foreign key."""
    text = key.decode(errors="replace") if isinstance(key, bytes) else key
    if not text.startswith(STREAM_PREFIX):
        raise WireError("bad_camera", f"stream key {text[:80]!r} lacks {STREAM_PREFIX!r}")
    return parse_camera(text[len(STREAM_PREFIX) :])


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


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_pixels(data: bytes) -> int | None:
    """Width x height from the JPEG's frame header, read without decoding; None if absent."""
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _SOF_MARKERS:
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return width * height
        if marker == 0xDA:  # start of scan before any frame header
            return None
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


def frame_from_http(headers: Mapping[str, str], body: bytes) -> Frame:
    """Build a Frame from a `POST /frames` request; raises WireError."""
    camera = parse_camera(headers.get(HEADER_CAMERA))
    seq = parse_int("seq", headers.get(HEADER_SEQ))
    captured_ns = parse_int("captured_ns", headers.get(HEADER_CAPTURED_NS))
    check_jpeg(body)
    return Frame(camera, seq, captured_ns, body)


def frame_from_form(form: Mapping[str, str]) -> Frame:
    """Build a Frame from the article's form post; raises WireError."""
    camera = parse_camera(form.get("camera"))
    seq = parse_int("seq", form.get("seq"))
    captured_ns = parse_int("captured_ns", form.get("captured_ns"))
    jpeg = _b64decode(form.get(FORM_IMAGE, "").encode())
    check_jpeg(jpeg)
    return Frame(camera, seq, captured_ns, jpeg)


def frame_from_pubsub(camera: str, data: bytes) -> Frame:
    """Build a Frame from a pubsub payload; raises WireError."""
    head, newline, jpeg = data.partition(b"\n")
    if not newline:
        raise WireError("bad_message", "message lacks its metadata line")
    seq, _, captured_ns = head.partition(b" ")
    frame = Frame(camera, parse_int("seq", seq), parse_int("captured_ns", captured_ns), jpeg)
    check_jpeg(jpeg)
    return frame


def frame_from_latest(camera: str, value: bytes) -> Frame:
    """Build a Frame from a set-publish value; raises WireError."""
    parts = value.split(b" ", 2)
    if len(parts) != 3:
        raise WireError("bad_message", "value is not '<seq> <captured_ns> <base64>'")
    seq, captured_ns = parse_int("seq", parts[0]), parse_int("captured_ns", parts[1])
    jpeg = _b64decode(parts[2])
    check_jpeg(jpeg)
    return Frame(camera, seq, captured_ns, jpeg)


def _b64decode(data: bytes) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise WireError("bad_base64", "image is not valid base64") from exc


def frame_from_stream(camera: str, fields: Mapping[bytes, bytes]) -> Frame:
    """Build a Frame from a Redis stream entry; raises WireError."""
    jpeg = fields.get(FIELD_JPEG)
    if not isinstance(jpeg, bytes):
        raise WireError("missing_jpeg", "entry has no jpeg field")
    seq = parse_int("seq", fields.get(FIELD_SEQ))
    captured_ns = parse_int("captured_ns", fields.get(FIELD_CAPTURED_NS))
    check_jpeg(jpeg)
    return Frame(camera, seq, captured_ns, jpeg)
