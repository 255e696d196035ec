"""The Redis transport: one stream per camera, `XADD ... MAXLEN ~ N`, newest entry wins.

Sending side: `RedisPublisher` adds each frame to `framewire:frames:<camera>`
with fields `jpeg`, `seq` and `captured_ns`, trimmed to about `maxlen`
entries. Receiving side: `RedisConsumer`, a thread inside the receiver's
worker that discovers the camera streams, blocks in `XREAD` for new entries,
keeps only the newest entry per stream (the older ones it skips are counted
as dropped), and hands it to the pipeline. A malformed entry is counted and
logged once per reason; a lost connection is retried with backoff and logged
once per state change.

Both sides speak RESP2 (`protocol=2`): with RESP3, redis-py builds a debug
string for pushed messages that costs about 1.5 ms per 160 KB frame.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from framewire.config import redact
from framewire.frame import STREAM_PREFIX, Frame, WireError, camera_from_key, frame_from_stream
from framewire.pipeline import Pipeline
from framewire.transports import PublishError

log = logging.getLogger(__name__)

BLOCK_MS = 1000
DISCOVER_EVERY = 2.0


def connect(url: str, connect_timeout: float = 2.0, read_timeout: float = 5.0) -> redis.Redis:
    """A client for `url` (`redis://`, `rediss://` or `unix://`), RESP2, with timeouts."""
    return redis.Redis.from_url(
        url,
        protocol=2,
        socket_connect_timeout=connect_timeout,
        socket_timeout=read_timeout,
        socket_keepalive=True,
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
    """XADDs frames to their camera's stream, trimmed to about `maxlen` entries."""

    name = "redis"

    def __init__(
        self, url: str, maxlen: int = 8, connect_timeout: float = 1.0, read_timeout: float = 2.0
    ) -> None:
        self.target = redact(url)
        self._client = connect(url, connect_timeout, read_timeout)
        self._maxlen = maxlen

    def send(self, frame: Frame) -> None:
        try:
            self._client.xadd(
                STREAM_PREFIX + frame.camera,
                frame.stream_fields(),
                maxlen=self._maxlen,
                approximate=True,
            )
        except redis.RedisError as exc:
            raise PublishError(_error_reason(exc), type(exc).__name__) from exc

    def close(self) -> None:
        self._client.close()


class RedisConsumer:
    """Reads the newest entry of every camera stream and feeds the pipeline."""

    def __init__(self, url: str, pipeline: Pipeline, backoff_max: float = 2.0) -> None:
        self.target = redact(url)
        self._client = connect(url, read_timeout=BLOCK_MS / 1000 + 5)
        self._pipeline = pipeline
        self._backoff_max = backoff_max
        self._stop = threading.Event()
        self._ids: dict[bytes, bytes] = {}  # stream key -> last id read
        self._discovered_at = 0.0
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
        try:
            self._pipeline.ingest(frame_from_stream(camera, entries[-1][1]))
        except WireError as exc:
            if exc.reason == "camera_limit":  # the whole stream is refused, with no new labels
                self._reject(exc, len(entries))
                return
            self._reject(exc)
        if len(entries) > 1:
            skipped = len(entries) - 1
            self._pipeline.metrics.frames_dropped.labels(camera, "redis", "receive").inc(skipped)

    def _reject(self, exc: WireError, count: int = 1) -> None:
        """Count refused entries; log the first of each reason only."""
        self._pipeline.reject(exc.reason, count)
        if exc.reason not in self._logged_reasons:
            self._logged_reasons.add(exc.reason)
            log.warning(
                "skipping malformed stream entries (%s): %s; further ones are only counted",
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
