"""The Redis transport: its wire codec and its sending side (the receiving side, consumer
threads, is in redis_consumers.py).

Default mode `stream`: one stream per camera, `framewire:frames:<camera>`,
entries with fields `jpeg`, `seq` and `captured_ns`, trimmed with
`XADD ... MAXLEN ~ N`.

Two comparison modes exist for the benchmark: `pubsub` (PUBLISH a metadata
line and the bytes to `framewire:pubsub:<camera>`) and `set-publish`, the
original article's way (SET `framewire:latest:<camera>` to
`<seq> <captured_ns> <base64>`, PUBLISH the key's name to
`framewire:notify:<camera>`; the receiver GETs it). Pub/sub has no backlog
cap on the server: Redis drops a subscriber about 32 MB behind and redis-py
reconnects silently, so frames vanish; streams skip old frames instead.

Every client speaks RESP2 (`protocol=2`): with RESP3, redis-py builds a debug
string for each pushed message that costs about 1.5 ms per 160 KB frame.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping

import redis

from framewire.frame import Frame, WireError, b64decode, check_jpeg, parse_camera, parse_int
from framewire.transports import FrameSender, PublishError, Unreachable
from framewire.transports.redis_connect import ERRORS, LazyClient, error_reason
from framewire.urls import redact

log = logging.getLogger(__name__)

REDIS_MODES = ("stream", "pubsub", "set-publish")
PREFIXES = {  # key kind -> prefix; the camera id follows
    "stream": "framewire:frames:",
    "pubsub": "framewire:pubsub:",
    "latest": "framewire:latest:",
    "notify": "framewire:notify:",
}
FIELD_JPEG = b"jpeg"
FIELD_SEQ = b"seq"
FIELD_CAPTURED_NS = b"captured_ns"


def key(kind: str, camera: str) -> str:
    """The Redis key (or channel) of `kind` for `camera`."""
    return PREFIXES[kind] + camera


def camera_from_key(name: bytes | str, kind: str) -> str:
    """The camera id of a key of `kind`; raises WireError for a foreign or bad key."""
    text = name.decode(errors="replace") if isinstance(name, bytes) else name
    prefix = PREFIXES[kind]
    if not text.startswith(prefix):
        raise WireError("bad_camera", f"key {text[:80]!r} lacks {prefix!r}")
    return parse_camera(text[len(prefix) :])


def stream_fields(frame: Frame) -> dict[bytes, bytes]:
    """The stream entry of a frame."""
    return {
        FIELD_JPEG: frame.jpeg,
        FIELD_SEQ: str(frame.seq).encode(),
        FIELD_CAPTURED_NS: str(frame.captured_ns).encode(),
    }


def from_stream(camera: str, fields: Mapping[bytes, bytes]) -> Frame:
    """A Frame from a stream entry; raises WireError."""
    jpeg = fields.get(FIELD_JPEG)
    if not isinstance(jpeg, bytes):
        raise WireError("missing_jpeg", "entry has no jpeg field")
    seq = parse_int("seq", fields.get(FIELD_SEQ))
    captured_ns = parse_int("captured_ns", fields.get(FIELD_CAPTURED_NS))
    check_jpeg(jpeg)
    return Frame(camera, seq, captured_ns, jpeg)


def pubsub_message(frame: Frame) -> bytes:
    """One PUBLISH payload: a metadata line, then the raw JPEG."""
    return b"%d %d\n" % (frame.seq, frame.captured_ns) + frame.jpeg


def from_pubsub(camera: str, data: bytes) -> Frame:
    """A Frame from a pubsub payload; raises WireError."""
    head, newline, jpeg = data.partition(b"\n")
    if not newline:
        raise WireError("bad_message", "message lacks its metadata line")
    seq, _, captured_ns = head.partition(b" ")
    frame = Frame(camera, parse_int("seq", seq), parse_int("captured_ns", captured_ns), jpeg)
    check_jpeg(jpeg)
    return frame


def latest_value(frame: Frame) -> bytes:
    """The article's SET value: metadata, then the base64 JPEG."""
    return b"%d %d " % (frame.seq, frame.captured_ns) + base64.b64encode(frame.jpeg)


def from_latest(camera: str, value: bytes) -> Frame:
    """A Frame from a set-publish value; raises WireError."""
    parts = value.split(b" ", 2)
    if len(parts) != 3:
        raise WireError("bad_message", "value is not '<seq> <captured_ns> <base64>'")
    seq, captured_ns = parse_int("seq", parts[0]), parse_int("captured_ns", parts[1])
    jpeg = b64decode(parts[2])
    check_jpeg(jpeg)
    return Frame(camera, seq, captured_ns, jpeg)


class RedisSender(FrameSender):
    """Sends frames through Redis: XADD to the camera's stream (trimmed to about `maxlen`
    entries; the default), or the comparison modes PUBLISH and SET + PUBLISH.

    `send(image, camera=...)` takes a BGR image, JPEG bytes or a Frame; a frame
    that breaks the wire contract raises `Refused` before anything is sent,
    and a Redis that cannot be reached within `timeout` raises `Unreachable`.
    """

    name = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        maxlen: int = 8,
        timeout: float = 2.0,
        mode: str = "stream",
        ca_cert: str = "",
        cluster: str = "",
        camera: str = "cam0",
        quality: int = 80,
    ) -> None:
        """`cluster`: seed nodes `HOST:PORT,...` of a Redis Cluster (see `connect`)."""
        super().__init__(camera, quality)
        self.target = redact(url)
        self.mode = mode
        modes = {"stream": self._xadd, "pubsub": self._publish, "set-publish": self._set_publish}
        if mode not in modes:
            raise ValueError(f"mode must be one of {', '.join(modes)}")
        self._put = modes[mode]
        self._client = LazyClient(url, timeout, timeout, ca_cert, cluster)
        if cluster:  # a lost primary's replica takes over within seconds: retry soon after
            self.retry_cap = 0.25
        self._maxlen = maxlen
        self._timeout = timeout

    def deliver(self, frame: Frame) -> None:
        try:
            self._put(self._client.get(), frame)
        except ERRORS as exc:
            reason = error_reason(exc)
            if reason in ("connect", "timeout"):
                detail = f"cannot reach Redis at {self.target} within {self._timeout:g} s"
                raise Unreachable(reason, detail) from exc
            raise PublishError(reason, f"Redis refused: {type(exc).__name__}") from exc

    def _xadd(self, client: redis.Redis, frame: Frame) -> None:
        fields = stream_fields(frame)
        client.xadd(key("stream", frame.camera), fields, maxlen=self._maxlen, approximate=True)

    def _publish(self, client: redis.Redis, frame: Frame) -> None:
        client.publish(key("pubsub", frame.camera), pubsub_message(frame))

    def _set_publish(self, client: redis.Redis, frame: Frame) -> None:
        """The article's way: SET the latest frame, PUBLISH its key's name."""
        latest = key("latest", frame.camera)
        client.set(latest, latest_value(frame))
        client.publish(key("notify", frame.camera), latest)

    def close(self) -> None:
        self._client.close()
