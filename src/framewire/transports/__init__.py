"""The two transports. Each module holds its wire codec and its sending and receiving side.

Transports sit below the pipeline: a receiving side hands frames to a
`FrameSink` (the receivers pass their pipeline) and never imports it.
"""

from __future__ import annotations

from typing import Protocol

from framewire.frame import Frame


class PublishError(RuntimeError):
    """A send that failed; `reason` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class Publisher(Protocol):
    """The sending side of a transport."""

    name: str
    target: str  # where it sends, safe to log

    def send(self, frame: Frame) -> None:
        """Deliver one frame or raise PublishError."""

    def close(self) -> None: ...


class FrameSink(Protocol):
    """Where a receiving side delivers frames (the receiver's pipeline)."""

    def ingest(self, frame: Frame, skipped: int = 0) -> None:
        """Accept `frame`, the newest of `skipped` + 1 that arrived together (the older ones are
        counted as dropped); raise WireError to refuse it (the caller then calls `reject`)."""

    def reject(self, reason: str, count: int = 1) -> None:
        """Count `count` refused frames."""

    def receive_error(self, reason: str) -> None:
        """Count a failure of the transport itself (connection lost, bad reply)."""
