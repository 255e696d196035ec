"""The transports, and what each provides (`Transport`); registry.py lists them.

Each transport has its wire codec, a sending side and a receiving side, and
plugs in through a `Transport` (its plug module: settings and factories).
Transports sit below the pipeline: a receiving side hands frames to a
`FrameSink` (the receivers pass their pipeline) and never imports it. The
sending sides (`HttpSender`, `RedisSender`) are what `framewire send` uses and
what `framewire.client` offers to other programs, both `FrameSender`s.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from framewire.frame import Frame, WireError, check_jpeg, parse_camera, parse_int
from framewire.owners import Owners
from framewire.splice import encode_params

if TYPE_CHECKING:
    from flask import Flask

Image = Frame | np.ndarray | bytes | bytearray | memoryview


class PublishError(RuntimeError):
    """A send that failed; `reason` is a short metric label. The message names no secret."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class Refused(PublishError):
    """The frame was refused: by the receiver (`status`, its JSON `error` and `detail`), or
    before sending, by the same checks (`status` 0)."""

    def __init__(self, error: str, detail: str, status: int = 0) -> None:
        label = f"http_{status}" if status else error
        where = f"the receiver refused the frame ({status} {error})" if status else error
        super().__init__(label, f"{where}: {detail}")
        self.error = error
        self.detail = detail
        self.status = status


class Unreachable(PublishError):
    """The receiver or Redis could not be reached (or did not answer) within the timeout."""


class FrameSender(ABC):
    """A transport's sending side: `send` turns what a user sends (a BGR image, JPEG bytes or a
    ready Frame) into a Frame and delivers it; subclasses `deliver` it.

    Defaults: the sender's camera, the next sequence number of that camera
    (1, then one more than the last one sent), the current time; images are
    JPEG-encoded at `quality` as the sender does it (a restart marker every MCU row).
    """

    def __init__(self, camera: str = "cam0", quality: int = 80) -> None:
        self.camera = parse_camera(camera)
        self.quality = quality
        self._next_seq: dict[str, int] = {}  # per camera: one more than the last seq sent

    name: str
    target: str  # where it sends, safe to log
    retry_cap: float = 2.0  # the longest wait between two attempts while sends fail

    def send(
        self,
        image: Image,
        camera: str | None = None,
        *,
        seq: int | None = None,
        captured_ns: int | None = None,
    ) -> Frame:
        """Deliver one frame and return it; raise PublishError (Refused, Unreachable)."""
        frame = self.frame(image, camera, seq, captured_ns)
        self.deliver(frame)
        return frame

    @abstractmethod
    def deliver(self, frame: Frame) -> None:
        """Put one frame on the wire or raise PublishError."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def frame(
        self, image: Image, camera: str | None, seq: int | None, captured_ns: int | None
    ) -> Frame:
        """The Frame to send; raises Refused when it breaks the wire contract."""
        if isinstance(image, Frame):
            return image
        captured_ns = time.time_ns() if captured_ns is None else captured_ns
        try:
            camera = parse_camera(self.camera if camera is None else camera)
            if isinstance(image, np.ndarray):
                params = encode_params(self.quality, image)
                ok, buffer = cv2.imencode(".jpg", image, params)
                if not ok:
                    raise WireError("not_jpeg", f"cannot JPEG-encode an image of {image.shape}")
                jpeg = buffer.tobytes()
            else:
                jpeg = bytes(image)
                check_jpeg(jpeg)
            seq = self._next_seq.get(camera, 1) if seq is None else parse_int("seq", str(seq))
            captured_ns = parse_int("captured_ns", str(captured_ns))
        except WireError as exc:
            raise Refused(exc.reason, exc.detail) from None
        self._next_seq[camera] = seq + 1
        return Frame(camera, seq, captured_ns, jpeg)


class FrameSink(Protocol):
    """Where a receiving side delivers frames (the receiver's pipeline)."""

    def ingest(self, frame: Frame, skipped: int = 0) -> None:
        """Accept `frame`, the newest of `skipped` + 1 that arrived together (the older ones are
        counted as dropped); raise WireError to refuse it (the caller then calls `reject`)."""

    def reject(self, reason: str, count: int = 1) -> None:
        """Count `count` refused frames."""

    def receive_error(self, reason: str) -> None:
        """Count a failure of the transport itself (connection lost, bad reply)."""


Stop = Callable[[], object]


@dataclass(frozen=True)
class Transport:
    """What a transport provides, read by the config, the CLI, the sender and the app.

    Settings are frozen dataclasses of `settings.setting()` fields, mixed into
    `SenderConfig` and `ReceiverConfig`; the rules between them raise `ConfigError`.
    Each mode a setting chooses is chosen once, when a side is built.
    """

    name: str  # in --transports, metric labels, and the `<name>-receiver` command
    url: str  # the sender setting that turns it on (empty: off), e.g. "http_url"
    sending: type  # the sender's settings of this transport
    check_sending: Callable[[Any], None]  # their rules, given the SenderConfig
    senders: Callable[[Any], list[FrameSender]]  # the sending side: one camera's senders (one
    # per request in flight) for a SenderConfig; [] when another part sends (HTTP fan-out)
    receiving: type  # the receiver's settings of this transport
    check_receiving: Callable[[Any], None]  # their rules, given the ReceiverConfig
    receive: Callable[[Flask, FrameSink, Any, int, Owners], Stop | None]  # the receiving side:
    # on the app, deliver to the sink (with that many decoders) the frames of the cameras this
    # replica owns, keeping the owners current; the stop it returns runs first
    port: int  # its receiver's default port
    receiver_help: str  # its receiver command's help
