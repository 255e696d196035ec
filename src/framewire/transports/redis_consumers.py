"""The Redis transport's receiving side: consumer threads that read frames into a FrameSink.

`StreamConsumer` (the default mode) discovers the camera streams, blocks in
`XREAD` over the streams of the cameras this replica owns (owners.py; every
camera when alone), keeps only the newest entry per stream (the older ones are
counted as dropped) and hands it to decoder lanes. `SubscriberConsumer` follows
the comparison modes' pub/sub channels. A malformed entry is counted and logged
once per reason; a lost connection is retried with backoff and logged once per
state change. The wire codec and the sending side are in redis.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping

import redis

from framewire.frame import Frame, WireError
from framewire.lanes import Lanes
from framewire.owners import Owners
from framewire.resilience import Backoff, UpDown, Worker
from framewire.transports import FrameSink
from framewire.transports.redis import (
    PREFIXES,
    camera_from_key,
    from_latest,
    from_pubsub,
    from_stream,
    key,
)
from framewire.transports.redis_connect import ERRORS, LazyClient, error_reason
from framewire.urls import redact

log = logging.getLogger(__name__)

BLOCK_MS = 250  # short, so a stop joins the consumer well within the graceful timeout
DISCOVER_EVERY = 2.0
MAX_LOGGED = 256  # refusals logged once each (by reason, or reason and camera); then counted


class _Consumer:
    """A thread that polls Redis for frames, retrying with backoff; subclasses poll."""

    def __init__(self, url: str, sink: FrameSink, ca_cert: str = "", cluster: str = "") -> None:
        self.target = redact(url)
        self._lazy = LazyClient(url, 2.0, BLOCK_MS / 1000 + 5, ca_cert, cluster)
        self._sink = sink
        self._state = UpDown("redis", self.target, logger=log)
        self._logged_reasons: set[str] = set()
        self._worker = Worker("redis-consumer", self._run, join_timeout=BLOCK_MS / 1000 + 3)

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> bool:
        """End the thread (within one blocking read) and join it; True if it ended."""
        ended = self._worker.stop()
        self._lazy.close()
        return ended

    @property
    def _client(self) -> redis.Redis:
        return self._lazy.get()

    def _run(self) -> None:
        backoff, stopping = Backoff(0.1, 2.0), self._worker.stopping
        while not stopping.is_set():
            try:
                self._poll()
            except ERRORS as exc:
                reason = error_reason(exc)
                self._sink.receive_error(reason)
                self._state.set(False, f"{reason}: {type(exc).__name__}")
                backoff.wait(stopping)
                continue
            except Exception:  # a bug must not end the thread: count it, log it once, go on
                self._sink.receive_error("internal")
                if "internal" not in self._logged_reasons:
                    self._logged_reasons.add("internal")
                    log.exception("unexpected error in the Redis consumer; continuing")
                backoff.wait(stopping)
                continue
            backoff.reset()

    def _poll(self) -> None:
        raise NotImplementedError

    def _ingest(self, parse: Callable[[], Frame], skipped: int = 0) -> None:
        """Ingest the newest message of a camera; `skipped` older ones came with it."""
        try:
            self._sink.ingest(parse(), skipped)
        except WireError as exc:
            self._reject(exc, 1 + skipped)

    def _reject(self, exc: WireError, count: int = 1) -> None:
        """Count refused frames; log the first of each reason (and camera, if it names one)."""
        self._sink.reject(exc.reason, count)
        logged = f"{exc.reason} {exc.camera}".strip()
        if logged not in self._logged_reasons and len(self._logged_reasons) < MAX_LOGGED:
            self._logged_reasons.add(logged)
            log.warning(
                "skipping malformed frames (%s): %s; further ones are only counted",
                exc.reason,
                exc.detail,
            )


Entry = tuple[Mapping[bytes, bytes], int]  # a camera's newest entry, and how many it overtook


def _camera(name: bytes) -> str:
    """The camera id in a stream key (as it is, even if not a valid id: refused when read)."""
    return name.decode(errors="replace").removeprefix(PREFIXES["stream"])


def _overtake(older: Entry, newer: Entry) -> Entry:
    """`newer` replaces `older` still pending: `older` and what it overtook are skipped too."""
    return newer[0], older[1] + 1 + newer[1]


class StreamConsumer(_Consumer):
    """Reads the newest entry of every camera stream (the default mode).

    The reading thread only reads: each camera's newest entry goes to its lane
    (lanes.py), and `decoders` threads parse and ingest (decode) the cameras'
    entries in parallel, at most one per camera at a time, the newest pending
    one kept. A camera's decode never waits for another camera's.
    """

    def __init__(
        self,
        url: str,
        sink: FrameSink,
        ca_cert: str = "",
        cameras: Collection[str] = (),
        cluster: str = "",
        decoders: int = 1,
        owners: Owners | None = None,
        on_owned: Callable[[set[str], set[str]], None] = lambda gained, lost: None,
        on_taken: Callable[[str, float], None] = lambda camera, seconds: None,
    ) -> None:
        super().__init__(url, sink, ca_cert, cluster)
        self._ids: dict[bytes, bytes] = {}  # stream key -> last id read
        self._discovered_at = 0.0
        self._only = [key("stream", camera).encode() for camera in cameras]  # empty: every camera
        self._lanes: Lanes[Entry] = Lanes("decode", decoders, self._decode, _overtake)
        self._owners = owners or Owners.solo()
        self._on_owned = on_owned  # (cameras gained, cameras lost) at each change
        self._on_taken = on_taken  # (camera, seconds from the change to its first frame)
        self._owned: frozenset[bytes] = frozenset()  # the streams this replica reads
        self._known: frozenset[bytes] = frozenset()  # the streams known at the last claim
        self._reown = threading.Event()  # set when the replicas changed: claim again
        self._owners.subscribe(lambda before, now: self._reown.set())
        self._taken: dict[str, float] = {}  # camera taken over -> when (monotonic)

    def start(self) -> None:
        self._lanes.start()
        super().start()

    def stop(self) -> bool:
        """End the reading thread, then the decoders (each finishes its frame)."""
        ended = super().stop()
        return self._lanes.stop() and ended

    def owned(self) -> list[str]:
        """The cameras this replica reads now (all of them when it is alone)."""
        return sorted(_camera(name) for name in self._owned)

    def _poll(self) -> None:
        if time.monotonic() - self._discovered_at > (DISCOVER_EVERY if self._ids else 0.25):
            self.discover()
        if self._reown.is_set():
            self._claim()
        ids = {name: self._ids[name] for name in self._owned}
        if not ids:
            self._worker.stopping.wait(0.25)
            return
        reply = self._client.xread(ids, block=BLOCK_MS)
        self._state.set(True)
        for name, entries in reply or []:
            self._ids[name] = entries[-1][0]
            self._take(name, entries)

    def discover(self) -> None:
        """Follow every camera stream that appeared (or the cameras asked for, whether their
        streams exist yet or not), from the entry after its newest one.

        A real id, not `$`: XREAD resolves `$` afresh at every call, so entries
        added between two calls would be missed.
        """
        pattern = key("stream", "*")
        names = self._only or self._client.scan_iter(match=pattern, count=100, _type="stream")
        for name in names:
            if name not in self._ids:
                newest = self._client.xrevrange(name, count=1)
                self._ids[name] = newest[0][0] if newest else b"0-0"
                self._reown.set()
        self._discovered_at = time.monotonic()
        self._state.set(True)
        if self._reown.is_set():
            self._claim()

    def _claim(self) -> None:
        """Read the streams of the cameras this replica owns now (every one when alone); a
        stream taken over is read from its newest entry on, one let go is not read again."""
        self._reown.clear()
        owned = frozenset(n for n in self._ids if self._owners.mine(_camera(n)))
        gained, lost = owned - self._owned, self._owned - owned
        # Taken over: cameras known at the last claim (not new ones) that another replica owned.
        taken = gained & self._known if self._owners.shared else frozenset()
        self._known = frozenset(self._ids)
        if not gained and not lost:
            return
        for name in taken:
            newest = self._client.xrevrange(name, count=1)
            self._ids[name] = newest[0][0] if newest else b"0-0"
            self._taken[_camera(name)] = time.monotonic()
        self._owned = owned
        cameras_gained = {_camera(n) for n in gained}
        cameras_lost = {_camera(n) for n in lost}
        if self._owners.shared:
            log.info(
                "owning %d of %d cameras%s%s",
                len(owned),
                len(self._ids),
                f"; taken over: {', '.join(sorted(_camera(n) for n in taken))}" if taken else "",
                f"; handed over: {', '.join(sorted(cameras_lost))}" if lost else "",
            )
        self._on_owned(cameras_gained, cameras_lost)

    def _take(self, name: bytes, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Ingest the newest entry; the older ones are skipped (latest frame wins)."""
        try:
            camera = camera_from_key(name, "stream")
        except WireError as exc:  # not a camera stream: every entry in it is refused
            self._reject(exc, len(entries))
            return
        self._lanes.put(camera, (entries[-1][1], len(entries) - 1))

    def _decode(self, camera: str, entry: Entry) -> None:
        """On a decoder thread: parse and ingest one camera's newest entry."""
        fields, skipped = entry
        self._ingest(lambda: from_stream(camera, fields), skipped)
        taken = self._taken.pop(camera, None) if self._taken else None
        if taken is not None:
            seconds = time.monotonic() - taken
            log.info("camera %s taken over: first frame %.2f s after the change", camera, seconds)
            self._on_taken(camera, seconds)


class SubscriberConsumer(_Consumer):
    """Follows the pub/sub channels of the `pubsub` and `set-publish` comparison modes."""

    def __init__(self, url: str, sink: FrameSink, mode: str, ca_cert: str = "") -> None:
        super().__init__(url, sink, ca_cert)
        self._kind = "pubsub" if mode == "pubsub" else "notify"
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)

    def stop(self) -> bool:
        ended = super().stop()
        self._pubsub.close()
        return ended

    def _poll(self) -> None:
        if not self._pubsub.subscribed:
            self._pubsub.psubscribe(key(self._kind, "*"))
        message = self._pubsub.get_message(timeout=BLOCK_MS / 1000)
        self._state.set(True)
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

    def _take(self, channel: bytes, data: bytes, skipped: int) -> None:
        try:
            camera = camera_from_key(channel, self._kind)
        except WireError as exc:
            self._reject(exc, 1 + skipped)
            return
        if self._kind == "pubsub":
            self._ingest(lambda: from_pubsub(camera, data), skipped)
        else:
            self._ingest(lambda: self._get_latest(camera), skipped)

    def _get_latest(self, camera: str) -> Frame:
        value = self._client.get(key("latest", camera))
        if value is None:
            raise WireError("missing_value", "the notified key holds no frame")
        return from_latest(camera, value)
