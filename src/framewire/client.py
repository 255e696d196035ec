"""framewire from your own programs: send frames from your loop, receive them in your algorithm.

    from framewire.client import HttpSender, RedisSender, RedisReceiver

    sender = RedisSender("redis://127.0.0.1:6379/0", camera="door")
    sender.send(image)                       # a BGR numpy image, or JPEG bytes

    with RedisReceiver("redis://127.0.0.1:6379/0", cameras=["door"]) as frames:
        for received in frames:              # the newest frame of each camera, no backlog
            run_my_algorithm(received.image, received.camera)

`HttpSender` and `RedisSender` are the classes `framewire send` itself sends
with. A refused frame raises `Refused` (its `error` is the receiver's reason:
`unauthorized`, `too_large`, `not_jpeg`, `too_many_pixels`...); a receiver or
Redis that cannot be reached within the timeout raises `Unreachable`. Both
are `PublishError`s, and their messages never hold a password or token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from framewire.config import ReceiverConfig, default
from framewire.frame import Frame, WireError, decode
from framewire.transports import PublishError, Refused, Unreachable
from framewire.transports.http import HttpSender
from framewire.transports.redis import RedisSender
from framewire.transports.redis_cluster import ClusterStreamConsumer
from framewire.transports.redis_connect import ERRORS, connect, error_reason
from framewire.transports.redis_consumers import StreamConsumer
from framewire.urls import redact

__all__ = [
    "HttpSender",
    "PublishError",
    "Received",
    "RedisReceiver",
    "RedisSender",
    "Refused",
    "Unreachable",
]


@dataclass(frozen=True, slots=True)
class Received:
    """One received frame: the decoded BGR image, the frame as sent, and when it arrived."""

    image: np.ndarray
    frame: Frame
    received_ns: int

    @property
    def camera(self) -> str:
        return self.frame.camera

    @property
    def seq(self) -> int:
        return self.frame.seq

    @property
    def latency_seconds(self) -> float:
        """Capture to receipt (sender and receiver clocks must agree: NTP across hosts)."""
        return (self.received_ns - self.frame.captured_ns) / 1e9


class RedisReceiver:
    """The newest frames of some cameras (or all) from Redis, decoded, for your own algorithm.

    A background thread follows the cameras' streams; `get()` and iteration
    return each camera's newest frame not yet returned (a frame that was
    overtaken before you asked is skipped and counted in `skipped`: latest
    frame wins, there is never a backlog). Frames that break the wire
    contract are skipped and counted in `rejected` by reason.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        cameras: Collection[str] = (),
        *,
        timeout: float = 2.0,
        ca_cert: str = "",
        cluster: str = "",
        max_pixels: int = default(ReceiverConfig, "max_pixels"),
    ) -> None:
        """`cluster`: seed nodes `HOST:PORT,...` of a Redis Cluster (the URL's password, ACL
        user and TLS apply to every node)."""
        self.target = redact(url)
        self.max_pixels = max_pixels
        self.skipped = 0
        self.rejected: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self._newest: dict[str, Frame] = {}
        self._ready = threading.Condition()
        self._closed = False
        probe = None
        try:
            probe = connect(url, timeout, timeout, ca_cert, cluster)  # a cluster connects here
            probe.ping()
        except ERRORS as exc:
            reason = error_reason(exc)
            detail = f"cannot reach Redis at {self.target} within {timeout:g} s"
            if reason not in ("connect", "timeout"):
                detail = f"Redis at {self.target} refused: {type(exc).__name__}"
            raise Unreachable(reason, detail) from None
        finally:
            if probe is not None:
                probe.close()
        if cluster:
            self._consumer: StreamConsumer = ClusterStreamConsumer(
                url, self, ca_cert, cluster, cameras
            )
        else:
            self._consumer = StreamConsumer(url, self, ca_cert, cameras)
        if cameras:  # every frame sent from now on is seen, even before the thread first polls
            self._consumer.discover()
        self._consumer.start()

    # The FrameSink the consumer thread delivers to.
    def ingest(self, frame: Frame, skipped: int = 0) -> None:
        with self._ready:
            self.skipped += skipped + (frame.camera in self._newest)
            self._newest[frame.camera] = frame
            self._ready.notify_all()

    def reject(self, reason: str, count: int = 1) -> None:
        with self._ready:
            self.rejected[reason] = self.rejected.get(reason, 0) + count

    def receive_error(self, reason: str) -> None:
        with self._ready:
            self.errors[reason] = self.errors.get(reason, 0) + 1

    def get(self, timeout: float | None = None) -> Received | None:
        """The next newest frame (the camera waiting longest first), or None after `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._ready:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not self._ready.wait_for(lambda: self._newest or self._closed, left):
                    return None
                if self._closed:
                    return None
                camera = next(iter(self._newest))  # dicts keep insertion order: oldest first
                frame = self._newest.pop(camera)
            try:
                image = decode(frame.jpeg, self.max_pixels)
            except WireError as exc:
                self.reject(exc.reason)
                continue
            return Received(image, frame, time.time_ns())

    def __iter__(self) -> Iterator[Received]:
        while (received := self.get()) is not None:
            yield received

    def close(self) -> None:
        """Stop the background thread; iteration ends."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        self._consumer.stop()

    def __enter__(self) -> RedisReceiver:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
