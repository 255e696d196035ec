"""Lanes: a few worker threads shared by many keys, the newest item of each key wins.

Each key (a camera) has one lane: at most one item in flight and one pending.
An item put while another of its key is pending replaces it (`merge` folds
what the older one carried, such as a count of skipped frames, into the
newer). Keys wait their turn in arrival order, so a busy key never holds up
another while a thread is free, and no key runs on two threads at once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from framewire.resilience import Worker

log = logging.getLogger(__name__)

T = TypeVar("T")


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Lanes(Generic[T]):
    """`threads` workers call `handle(key, item)` for the newest pending item of each key."""

    def __init__(
        self,
        name: str,
        threads: int,
        handle: Callable[[str, T], None],
        merge: Callable[[T, T], T] = lambda _older, newer: newer,
        join_timeout: float = 2.0,
    ) -> None:
        self._handle = handle
        self._merge = merge
        self._cond = threading.Condition()
        self._pending: dict[str, T] = {}  # insertion order: the key waiting longest first
        self._busy: set[str] = set()
        self._stopping = False
        self._failed = False
        self._workers = [
            Worker(f"{name}-{i}", self._run, join_timeout) for i in range(max(1, threads))
        ]

    @property
    def threads(self) -> int:
        return len(self._workers)

    def start(self) -> None:
        for worker in self._workers:
            worker.start()

    def put(self, key: str, item: T) -> None:
        """Queue `item` for `key`, folding in (and replacing) one still pending. Never blocks."""
        with self._cond:
            older = self._pending.get(key)
            self._pending[key] = item if older is None else self._merge(older, item)
            self._cond.notify()

    def stop(self) -> bool:
        """End the workers (each finishes the item in hand) and drop what is pending."""
        with self._cond:
            self._stopping = True
            self._pending.clear()
            self._cond.notify_all()
        ended = [worker.stop() for worker in self._workers]
        return all(ended)

    def _next(self) -> tuple[str, T] | None:
        """The oldest pending key not in flight, marked busy; None once stopping."""
        with self._cond:
            while not self._stopping:
                key = next((k for k in self._pending if k not in self._busy), None)
                if key is not None:
                    self._busy.add(key)
                    return key, self._pending.pop(key)
                self._cond.wait()
            return None

    def _run(self) -> None:
        while (taken := self._next()) is not None:
            key, item = taken
            try:
                self._handle(key, item)
            except Exception:  # a bug must not end the lane: log it once, go on
                if not self._failed:
                    self._failed = True
                    log.exception("unexpected error handling an item of %s; continuing", key)
            finally:
                with self._cond:
                    self._busy.discard(key)
                    self._cond.notify()  # its newer item, if one came, may run now
