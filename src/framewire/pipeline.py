"""What both receivers do with a frame: decode, process, annotate, publish to the hub.

`Pipeline.ingest` runs on the thread that received the frame (an HTTP request
thread or the Redis consumer): it decodes, so a bad JPEG is refused at once,
and hands the image to the camera's one-slot mailbox. A worker thread per
camera takes the newest image, runs the processing step and the overlay, and
publishes to the hub. A slow processing step therefore drops frames (counted)
instead of queueing them: frame age stays bounded.
"""

from __future__ import annotations

import logging
import threading
import time

import cv2
import numpy as np

from framewire.frame import Frame, WireError, jpeg_pixels
from framewire.mailbox import Mailbox
from framewire.metrics import RateMeter, ReceiverMetrics
from framewire.overlay import annotate
from framewire.processing import ProcessorFactory
from framewire.viewer import Channel, Hub

log = logging.getLogger(__name__)


MAX_PIXELS = 7680 * 4320  # 8K


def decode(jpeg: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode JPEG bytes to a BGR image; WireError if they do not decode.

    The frame header is checked first, so a small JPEG that claims enormous
    dimensions (a decompression bomb) is refused before any pixel is decoded.
    """
    pixels = jpeg_pixels(jpeg)
    if pixels is None:
        raise WireError("undecodable", "JPEG has no frame header")
    if pixels > max_pixels:
        raise WireError("too_many_pixels", f"JPEG claims {pixels} pixels, over {max_pixels}")
    try:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        raise WireError("undecodable", "JPEG could not be decoded")
    return image


class _CameraWorker:
    """Processes one camera's newest frame on its own thread."""

    def __init__(self, pipeline: Pipeline, channel: Channel) -> None:
        self.pipeline = pipeline
        self.channel = channel
        labels = (channel.camera, pipeline.transport)
        metrics = pipeline.metrics
        dropped = metrics.frames_dropped.labels(*labels, "process")
        self.mailbox: Mailbox[tuple[Frame, np.ndarray]] = Mailbox(lambda _: dropped.inc())
        self._process_seconds = metrics.process_seconds.labels(*labels)
        self._fps = metrics.receive_fps.labels(*labels)
        self._rate = RateMeter()
        self._processor = pipeline.processor_factory()
        self._failing = False
        self.thread = threading.Thread(
            target=self._run, name=f"process-{channel.camera}", daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        while not self.mailbox.closed:
            item = self.mailbox.get(timeout=1.0)
            if item is None:
                self._fps.set(self._rate.rate())
                continue
            frame, image = item
            started = time.perf_counter()
            image = self._process(image)
            self._rate.tick()
            fps = self._rate.rate()
            annotate(
                image,
                self.pipeline.transport,
                frame.camera,
                frame.seq,
                fps,
                self.channel.served_latency_ms,
            )
            self._process_seconds.observe(time.perf_counter() - started)
            self._fps.set(fps)
            self.channel.publish(image, frame.seq, frame.captured_ns)

    def _process(self, image: np.ndarray) -> np.ndarray:
        try:
            result = self._processor(image)
        except Exception:
            self.pipeline.metrics.receive_errors.labels(self.pipeline.transport, "processor").inc()
            if not self._failing:
                log.exception(
                    "processor failed on camera %s; showing frames unprocessed", self.channel.camera
                )
            self._failing = True
            return image
        if self._failing:
            log.info("processor recovered on camera %s", self.channel.camera)
        self._failing = False
        return result if isinstance(result, np.ndarray) else image


class Pipeline:
    """Decode on ingest, then process and publish per camera, latest frame wins."""

    def __init__(
        self,
        hub: Hub,
        metrics: ReceiverMetrics,
        transport: str,
        processor_factory: ProcessorFactory,
    ) -> None:
        self.hub = hub
        self.metrics = metrics
        self.transport = transport
        self.processor_factory = processor_factory
        self._workers: dict[str, _CameraWorker] = {}
        self._lock = threading.Lock()

    def ingest(self, frame: Frame, skipped: int = 0) -> None:
        """Decode `frame` and queue it for processing; raises WireError for a bad frame."""
        channel = self.hub.channel(frame.camera)
        labels = (frame.camera, self.transport)
        started = time.perf_counter()
        image = decode(frame.jpeg)
        self.metrics.decode_seconds.labels(*labels).observe(time.perf_counter() - started)
        self.metrics.frames_received.labels(*labels).inc()
        self.metrics.frame_bytes.labels(*labels).observe(len(frame.jpeg))
        self.metrics.frame_latency.labels(*labels, "received").observe(frame.age_seconds())
        self._worker(channel).mailbox.put((frame, image))
        if skipped:
            self.metrics.frames_dropped.labels(*labels, "receive").inc(skipped)

    def reject(self, reason: str, count: int = 1) -> None:
        """Count refused frames."""
        self.metrics.frames_rejected.labels(self.transport, reason).inc(count)

    def receive_error(self, reason: str) -> None:
        """Count a transport failure."""
        self.metrics.receive_errors.labels(self.transport, reason).inc()

    def _worker(self, channel: Channel) -> _CameraWorker:
        worker = self._workers.get(channel.camera)
        if worker is None:
            with self._lock:
                worker = self._workers.get(channel.camera)
                if worker is None:
                    worker = self._workers[channel.camera] = _CameraWorker(self, channel)
        return worker

    def close(self) -> None:
        for worker in list(self._workers.values()):
            worker.mailbox.close()
