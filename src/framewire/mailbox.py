"""A one-slot mailbox: the newest item wins, and an unread item it replaces is a drop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    """Holds at most one item. `put` never blocks; `get` waits for the next item."""

    def __init__(self, on_drop: Callable[[T], None] | None = None) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self._on_drop = on_drop

    def put(self, item: T) -> None:
        """Store `item`, replacing (and dropping) any item not yet taken."""
        with self._cond:
            dropped, self._item = self._item, item
            self._cond.notify_all()
        if dropped is not None and self._on_drop is not None:
            self._on_drop(dropped)

    def get(self, timeout: float | None = None) -> T | None:
        """Take the item, waiting up to `timeout` seconds; None on timeout or close."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            if item is not None:  # wake a producer in wait_taken; never another taker (two
                self._cond.notify_all()  # idle takers would wake each other without end)
            return item

    def wait_taken(self, timeout: float | None = None) -> None:
        """Block until the item is taken (or `timeout` passes, or the mailbox closes)."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is None or self._closed, timeout)

    def close(self) -> None:
        """Wake every waiter; later gets return at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def empty(self) -> bool:
        """No item waits to be taken."""
        return self._item is None

    @property
    def closed(self) -> bool:
        return self._closed
