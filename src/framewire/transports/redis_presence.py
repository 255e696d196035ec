"""The sender's camera state, through Redis: so a Redis receiver can tell why a camera is dark.

A sender with a Redis URL keeps, for each of its cameras, the key
`framewire:source:<camera>` = `{"up": true|false, "since_ns": ...}` with a
TTL of `TTL` seconds, refreshed every `BEAT` seconds and at once when a
source goes up or down. A Redis receiver reads it for a camera that shows no
signal: `source_down` (the sender runs, its camera does not deliver), `up`,
`gone` (the key was seen and expired: the sender stopped), or nothing (no
framewire sender writes it: another producer, or one not seen yet).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable

from framewire.resilience import UpDown, Worker
from framewire.transports.redis_connect import ERRORS, LazyClient, keep_beating

log = logging.getLogger(__name__)

PREFIX = "framewire:source:"
TTL = 6.0
BEAT = 2.0


class SourcePresence:
    """The sender side: one thread writing every camera's source state (`states()`)."""

    def __init__(self, client: LazyClient, states: Callable[[], dict[str, bool]]) -> None:
        self._lazy = client
        self._states = states
        self._since: dict[str, tuple[bool, int]] = {}  # camera -> (up, since when, ns)
        self._changed = threading.Event()
        self._worker = Worker("source-presence", self._run)
        self._state = UpDown("source state in Redis", "framewire:source:*", logger=log)

    def changed(self) -> None:
        """A source went up or down: write at once."""
        self._changed.set()

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        """End the thread and delete the keys: a receiver tells "sender gone" at once."""
        self._worker.stop(self._changed.set)
        with contextlib.suppress(*ERRORS):  # unreachable: the keys expire by themselves
            self._lazy.get().delete(*(PREFIX + camera for camera in self._since))
        self._lazy.close()

    def beat(self) -> None:
        client = self._lazy.get()
        now = time.time_ns()
        for camera, up in self._states().items():
            before = self._since.get(camera)
            if before is None or before[0] != up:
                self._since[camera] = before = (up, now)
            value = json.dumps({"up": up, "since_ns": before[1]})
            client.set(PREFIX + camera, value, px=int(TTL * 1000))

    def _run(self) -> None:
        keep_beating(self._worker.stopping, self._state, self.beat, BEAT, TTL, self._changed)


class SenderStates:
    """The receiver side: each camera's sender state, read on demand (at most once a second)."""

    def __init__(self, client: LazyClient) -> None:
        self._lazy = client
        self._seen: set[str] = set()  # cameras whose key was seen once
        self._cache: tuple[float, tuple[str, ...], dict[str, str]] = (0.0, (), {})
        self._lock = threading.Lock()

    def read(self, cameras: Iterable[str]) -> dict[str, str]:
        """`up`, `source_down` or `gone` for each of `cameras` known to a framewire sender."""
        key = tuple(sorted(cameras))
        with self._lock:
            read_at, asked, cached = self._cache
            if asked == key and time.monotonic() - read_at < 1.0:
                return cached
            try:
                client = self._lazy.get()
                values = [client.get(PREFIX + camera) for camera in key]
            except ERRORS:
                return {}  # Redis unreachable: the page says so from the receive errors
            found: dict[str, str] = {}
            for camera, raw in zip(key, values, strict=True):
                if raw is None:
                    if camera in self._seen:
                        found[camera] = "gone"
                    continue
                self._seen.add(camera)
                try:
                    found[camera] = "up" if json.loads(raw)["up"] else "source_down"
                except (ValueError, KeyError, TypeError):
                    continue  # not a sender's value: no claim
            self._cache = (time.monotonic(), key, found)
            return found

    def close(self) -> None:
        self._lazy.close()
