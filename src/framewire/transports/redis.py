"""The Redis transport: one stream per camera, `XADD ... MAXLEN ~ N`, newest entry wins.

Sending side: `RedisPublisher` adds each frame to `framewire:frames:<camera>`
with fields `jpeg`, `seq` and `captured_ns`, trimmed to about `maxlen`
entries. Receiving side: `StreamConsumer`, a thread inside the receiver's
worker that discovers the camera streams, blocks in `XREAD` for new entries,
keeps only the newest entry per stream (the older ones it skips are counted
as dropped), and hands it to the pipeline. A malformed entry is counted and
logged once per reason; a lost connection is retried with backoff and logged
once per state change.

Both sides speak RESP2 (`protocol=2`): with RESP3, redis-py builds a debug
string for pushed messages that costs about 1.5 ms per 160 KB frame.

Two comparison modes exist for the benchmark: `pubsub` (PUBLISH the bytes to
`framewire:pubsub:<camera>`) and `set-publish`, the original article's way
(SET `framewire:latest:<camera>` to a base64 value, PUBLISH the key's name to
`framewire:notify:<camera>`, the receiver GETs it). Pub/sub has no backlog
cap on the server: Redis disconnects a subscriber about 32 MB behind, and
redis-py reconnects silently, so frames vanish; streams skip old frames
instead, which is why `stream` is the default.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from framewire.config import redact
from framewire.frame import (
    LATEST_PREFIX,
    NOTIFY_PREFIX,
    PUBSUB_PREFIX,
    STREAM_PREFIX,
    Frame,
    WireError,
    camera_from_key,
    frame_from_latest,
    frame_from_pubsub,
    frame_from_stream,
    parse_camera,
)
from framewire.pipeline import Pipeline
from framewire.transports import PublishError

log = logging.getLogger(__name__)

BLOCK_MS = 1000
DISCOVER_EVERY = 2.0


def connect(
    url: str, connect_timeout: float = 2.0, read_timeout: float = 5.0, ca_cert: str = ""
) -> redis.Redis:
    """A client for `url` (`redis://`, `rediss://` with an optional CA file, or `unix://`).

    RESP2 and timeouts; user and password (an ACL user) come from the URL.
    """
    tls = {"ssl_ca_certs": ca_cert} if ca_cert and url.startswith("rediss://") else {}
    return redis.Redis.from_url(
        url,
        protocol=2,
        socket_connect_timeout=connect_timeout,
        socket_timeout=read_timeout,
        socket_keepalive=True,
        **tls,
    )


def _error_reason(exc: redis.RedisError) -> str:
    if isinstance(exc, redis.AuthenticationError | redis.exceptions.AuthorizationError):
        return "auth"
    if isinstance(exc, redis.TimeoutError):
        return "timeout"
    if isinstance(exc, redis.ConnectionError):
        return "connect"
    return "response"


class RedisPublisher:
    """Sends frames through Redis: XADD (default), PUBLISH, or SET + PUBLISH."""

    name = "redis"

    def __init__(
        self,
        url: str,
        maxlen: int = 8,
        connect_timeout: float = 1.0,
        read_timeout: float = 2.0,
        mode: str = "stream",
        ca_cert: str = "",
    ) -> None:
        self.target = redact(url)
        self.mode = mode
        self._client = connect(url, connect_timeout, read_timeout, ca_cert)
        self._maxlen = maxlen

    def send(self, frame: Frame) -> None:
        try:
            if self.mode == "stream":
                self._client.xadd(
                    STREAM_PREFIX + frame.camera,
                    frame.stream_fields(),
                    maxlen=self._maxlen,
                    approximate=True,
                )
            elif self.mode == "pubsub":
                self._client.publish(PUBSUB_PREFIX + frame.camera, frame.pubsub_message())
            else:  # set-publish, as in the article
                key = LATEST_PREFIX + frame.camera
                self._client.set(key, frame.latest_value())
                self._client.publish(NOTIFY_PREFIX + frame.camera, key)
        except redis.RedisError as exc:
            raise PublishError(_error_reason(exc), type(exc).__name__) from exc

    def close(self) -> None:
        self._client.close()


class _Consumer:
    """A thread that polls Redis for frames, retrying with backoff; subclasses poll."""

    def __init__(
        self, url: str, pipeline: Pipeline, backoff_max: float = 2.0, ca_cert: str = ""
    ) -> None:
        self.target = redact(url)
        self._client = connect(url, read_timeout=BLOCK_MS / 1000 + 5, ca_cert=ca_cert)
        self._pipeline = pipeline
        self._backoff_max = backoff_max
        self._stop = threading.Event()
        self._up: bool | None = None
        self._logged_reasons: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="redis-consumer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end; it does within one XREAD block (it is a daemon thread)."""
        self._stop.set()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._poll()
            except redis.RedisError as exc:
                reason = _error_reason(exc)
                self._pipeline.metrics.receive_errors.labels("redis", reason).inc()
                self._set_up(False, f"{reason}: {type(exc).__name__}")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._backoff_max)
                continue
            except Exception:  # a bug must not end the thread: count it, log it once, go on
                self._pipeline.metrics.receive_errors.labels("redis", "internal").inc()
                if "internal" not in self._logged_reasons:
                    self._logged_reasons.add("internal")
                    log.exception("unexpected error in the Redis consumer; continuing")
                self._stop.wait(backoff)
                continue
            backoff = 0.1

    def _poll(self) -> None:
        raise NotImplementedError

    def _ingest(self, camera: str, parse: Callable[[], Frame], older: int = 0) -> None:
        """Ingest the newest message of `camera`; `older` ones were skipped (latest wins)."""
        try:
            self._pipeline.ingest(parse())
        except WireError as exc:
            if exc.reason == "camera_limit":  # refused with the skipped ones, with no new labels
                self._reject(exc, 1 + older)
                return
            self._reject(exc)
        if older:
            self._pipeline.metrics.frames_dropped.labels(camera, "redis", "receive").inc(older)

    def _reject(self, exc: WireError, count: int = 1) -> None:
        """Count refused frames; log the first of each reason only."""
        self._pipeline.reject(exc.reason, count)
        if exc.reason not in self._logged_reasons:
            self._logged_reasons.add(exc.reason)
            log.warning(
                "skipping malformed frames (%s): %s; further ones are only counted",
                exc.reason,
                exc.detail,
            )

    def _set_up(self, up: bool, why: str = "") -> None:
        if up == self._up:
            return
        self._up = up
        if up:
            log.info("redis up: %s", self.target)
        else:
            log.warning("redis down: %s (%s); retrying with backoff", self.target, why)


class StreamConsumer(_Consumer):
    """Reads the newest entry of every camera stream (the default mode)."""

    def __init__(self, url: str, pipeline: Pipeline, ca_cert: str = "") -> None:
        super().__init__(url, pipeline, ca_cert=ca_cert)
        self._ids: dict[bytes, bytes] = {}  # stream key -> last id read
        self._discovered_at = 0.0

    def _poll(self) -> None:
        now = time.monotonic()
        if now - self._discovered_at > (DISCOVER_EVERY if self._ids else 0.25):
            self._discover()
            self._discovered_at = now
        if not self._ids:
            self._stop.wait(0.25)
            return
        reply = self._client.xread(dict(self._ids), block=BLOCK_MS)
        self._set_up(True)
        for key, entries in reply or []:
            self._ids[key] = entries[-1][0]
            self._take(key, entries)

    def _discover(self) -> None:
        """Start following every camera stream that appeared (new ones from their next entry)."""
        for key in self._client.scan_iter(match=STREAM_PREFIX + "*", count=100, _type="stream"):
            self._ids.setdefault(key, b"$")
        self._set_up(True)

    def _take(self, key: bytes, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Ingest the newest entry; the older ones are skipped (latest frame wins)."""
        try:
            camera = camera_from_key(key)
        except WireError as exc:  # not a camera stream: every entry in it is refused
            self._reject(exc, len(entries))
            return
        self._ingest(camera, lambda: frame_from_stream(camera, entries[-1][1]), len(entries) - 1)


class SubscriberConsumer(_Consumer):
    """Follows the pub/sub channels of the `pubsub` and `set-publish` comparison modes."""

    def __init__(self, url: str, pipeline: Pipeline, mode: str, ca_cert: str = "") -> None:
        super().__init__(url, pipeline, ca_cert=ca_cert)
        self._mode = mode
        self._prefix = PUBSUB_PREFIX if mode == "pubsub" else NOTIFY_PREFIX
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)

    def _poll(self) -> None:
        if not self._pubsub.subscribed:
            self._pubsub.psubscribe(self._prefix + "*")
        message = self._pubsub.get_message(timeout=BLOCK_MS / 1000)
        self._set_up(True)
        newest: dict[bytes, bytes] = {}
        skipped: dict[bytes, int] = {}
        while message is not None:  # drain what has arrived; keep the newest per camera
            if message["type"] == "pmessage":
                channel = message["channel"]
                skipped[channel] = skipped.get(channel, -1) + 1
                newest[channel] = message["data"]
            message = self._pubsub.get_message(timeout=0)
        for channel, data in newest.items():
            self._take(channel, data, skipped[channel])

    def _take(self, channel: bytes, data: bytes, older: int) -> None:
        try:
            camera = _camera(channel, self._prefix)
        except WireError as exc:
            self._reject(exc, 1 + older)
            return
        if self._mode == "pubsub":
            self._ingest(camera, lambda: frame_from_pubsub(camera, data), older)
        else:
            self._ingest(camera, lambda: self._get_latest(camera), older)

    def _get_latest(self, camera: str) -> Frame:
        value = self._client.get(LATEST_PREFIX + camera)
        if value is None:
            raise WireError("missing_value", "the notified key holds no frame")
        return frame_from_latest(camera, value)


def _camera(channel: bytes, prefix: str) -> str:
    return parse_camera(channel.decode(errors="replace")[len(prefix) :])


def consumer(url: str, pipeline: Pipeline, mode: str = "stream", ca_cert: str = "") -> _Consumer:
    """The receiving side for `mode`."""
    if mode == "stream":
        return StreamConsumer(url, pipeline, ca_cert)
    return SubscriberConsumer(url, pipeline, mode, ca_cert)
