"""One way to keep a link alive: up/down state logged once per change, capped backoff, a worker
thread that stops within a bound.

Used by the sender's transport workers, the Redis consumer, the grab thread
and the receivers' camera workers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class UpDown:
    """The state of one link (`what` to `target`); logs one line per change, never per event."""

    def __init__(
        self,
        what: str,
        target: str,
        on_change: Callable[[bool], None] | None = None,
        logger: logging.Logger = log,
    ) -> None:
        self.what = what
        self.target = target
        self.up: bool | None = None
        self._on_change = on_change
        self._log = logger
        self._lock = threading.Lock()

    def set(self, up: bool, why: str = "") -> bool:
        """Record the state; True when it changed (and was logged)."""
        with self._lock:
            if up == self.up:
                return False
            self.up = up
        if up:
            self._log.info("%s up: %s", self.what, self.target)
        else:
            self._log.warning(
                "%s down: %s (%s); retrying with backoff", self.what, self.target, why
            )
        if self._on_change is not None:
            self._on_change(up)
        return True


class Backoff:
    """Capped exponential backoff: `first`, doubling up to `cap`; `reset` after a success."""

    def __init__(self, first: float = 0.1, cap: float = 2.0) -> None:
        self.first = first
        self.cap = cap
        self.delay = first

    def wait(self, stopping: threading.Event) -> bool:
        """Sleep the current delay (cut short by `stopping`), then double it; True if stopping."""
        stopped = stopping.wait(self.delay)
        self.delay = min(self.delay * 2, self.cap)
        return stopped

    def reset(self) -> None:
        self.delay = self.first


class Worker:
    """A named thread running `target` until `stopping` is set; `stop` joins it within a bound.

    `target` must return soon after `stopping` is set (wait on it, or on a
    mailbox that `wake` closes). A thread that overstays is logged once.
    """

    def __init__(self, name: str, target: Callable[[], None], join_timeout: float = 5.0) -> None:
        self.name = name
        self.stopping = threading.Event()
        self.join_timeout = join_timeout
        self._thread = threading.Thread(target=target, name=f"framewire-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, wake: Callable[[], None] | None = None) -> bool:
        """Ask the thread to end, call `wake` (close its mailbox), join; True if it ended."""
        self.stopping.set()
        if wake is not None:
            wake()
        if self._thread.ident is None or self._thread is threading.current_thread():
            return True
        self._thread.join(self.join_timeout)
        if self._thread.is_alive():
            log.warning("thread %s did not stop within %g s", self.name, self.join_timeout)
            return False
        return True

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
