"""What a receiver knows about why a camera shows no signal, receiver-wide.

A refused frame never names a camera slot (it may not even parse), so
refusals are counted per reason for the whole receiver, as are failures of
the transport itself (a Redis receiver that cannot read its stream). /stats
carries both, each reason with its count and how long ago it last happened,
so the page can say "frames refused: too_large" or "transport errors:
connection" beside a camera that is waiting or stopped.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class Events:
    """Counts of named events (reasons), each with when it last happened."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._last: dict[str, float] = {}

    def add(self, reason: str, count: int = 1, now: float | None = None) -> None:
        """Count `count` events of `reason` (at `now`, monotonic seconds)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._counts[reason] = self._counts.get(reason, 0) + count
            self._last[reason] = now

    def stats(self, now: float | None = None) -> dict[str, dict[str, float]]:
        """Per reason: `count` since start and `seconds_ago` (since the last one)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return {
                reason: {
                    "count": self._counts[reason],
                    "seconds_ago": round(max(0.0, now - self._last[reason]), 3),
                }
                for reason in sorted(self._counts)
            }


# The setting to change for a refusal a setting causes.
FIXES = {
    "too_many_pixels": "raise --max-pixels (FRAMEWIRE_MAX_PIXELS)",
    "camera_limit": "raise --max-cameras (FRAMEWIRE_MAX_CAMERAS)",
}


class Refusals(Events):
    """Refused frames by reason, each also with the newest one's camera and detail (when the
    pipeline refused it: a frame refused before, e.g. for its headers, names none) and the
    setting to change when one is why."""

    def __init__(self) -> None:
        super().__init__()
        self._newest: dict[str, tuple[str, str]] = {}  # reason: camera, detail

    def note(self, reason: str, camera: str, detail: str) -> None:
        """What the newest refused frame of `reason` was (its count comes from `add`)."""
        with self._lock:
            self._newest[reason] = (camera, detail)

    def stats(self, now: float | None = None) -> dict[str, dict[str, float]]:  # type: ignore[override]
        """Per reason: `count`, `seconds_ago`, and `camera`, `detail` and `fix` ("" if unknown)."""
        found: dict[str, dict[str, Any]] = dict(super().stats(now))
        with self._lock:
            newest = dict(self._newest)
        for reason, entry in found.items():
            camera, detail = newest.get(reason, ("", ""))
            entry.update(camera=camera, detail=detail, fix=FIXES.get(reason, ""))
        return found


def signal(has_frame: bool, fresh: bool) -> str:
    """A camera's signal: `live`, `waiting` (no frame yet) or `stale` (frames stopped)."""
    if not has_frame:
        return "waiting"
    return "live" if fresh else "stale"
