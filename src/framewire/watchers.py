"""Who watches a camera: its open streams by encode key, and the width they let it decode at.

A camera's frame may be decoded at a reduced scale (1/2 to 1/8 of the DCT)
while every open stream watches a narrower variant. A stream of every camera
(the grid) registers in watchers of its own that each camera's watchers also
count.
"""

from __future__ import annotations

import threading
from collections import Counter

from framewire.variants import FULL, EncodeKey


class Watchers:
    """Open streams per encode key; `also`: watchers of every camera, counted here too."""

    def __init__(self, also: Watchers | None = None) -> None:
        self.also = also
        self._lock = threading.Lock()
        self._keys: Counter[EncodeKey] = Counter()

    def add(self, key: EncodeKey = FULL) -> None:
        """A stream of `key` opened."""
        with self._lock:
            self._keys[key] += 1

    def remove(self, key: EncodeKey = FULL) -> bool:
        """A stream of `key` closed; True if it was the last of its key."""
        with self._lock:
            self._keys[key] -= 1
            if self._keys[key] > 0:
                return False
            del self._keys[key]
            return True

    def watched(self, key: EncodeKey) -> bool:
        """Whether a stream of `key` is open."""
        with self._lock:
            return key in self._keys

    def keys(self) -> list[EncodeKey]:
        """The keys of the open streams, with those of `also`."""
        with self._lock:
            keys = list(self._keys)
        return keys + (self.also.keys() if self.also else [])

    def decode_width(self) -> int | None:
        """The narrowest width the next frame may be decoded at; None: its full size.

        Reduced only while every open stream watches a narrower variant: a
        full-width stream, the grid, or no stream at all (snapshots, a viewer
        about to open) keep the full size. A snapshot taken meanwhile has the
        widest watched variant's width.
        """
        widths = [key[0] for key in self.keys()]
        if not widths or None in widths:
            return None
        return max(w for w in widths if w is not None)
