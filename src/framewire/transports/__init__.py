"""The two transports. Each module holds both its sending and its receiving side."""

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
