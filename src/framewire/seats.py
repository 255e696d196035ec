"""The viewer seats: how many streams a receiver serves at once (`--max-viewers`), for every
camera's streams and the grid's alike."""

from __future__ import annotations

import threading


class ViewerLimit(Exception):
    """Every seat is taken, or the receiver is stopping: a 503 `viewer_limit`."""

    reason = "viewer_limit"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Seats:
    """The open streams' count and its cap; none is given once closed (at shutdown)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.taken = 0
        self.closed = False
        self._lock = threading.Lock()

    def take(self) -> None:
        """Take a seat for a stream; ViewerLimit at the cap or once closed."""
        with self._lock:
            if self.taken >= self.cap or self.closed:
                raise ViewerLimit(f"at most {self.cap} viewers")
            self.taken += 1

    def give_back(self) -> None:
        """A stream closed."""
        with self._lock:
            self.taken -= 1

    def close(self) -> None:
        """Give no more seats."""
        with self._lock:
            self.closed = True
