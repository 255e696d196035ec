"""What both receivers do with a frame: decode, process, annotate, publish to the hub.

`Pipeline` is the transports' `FrameSink`. `ingest` runs on the thread that
received the frame (an HTTP request thread, or one of the Redis consumer's
decoder threads): it checks the JPEG header (size limits) and decodes there,
with no hand-off (malloc arenas are capped, runtime.tune_malloc), so a bad
frame is refused at once, then hands the image to the camera's one-slot
mailbox. At most `decoders` frames decode at once (one per usable core by
default), which bounds the memory decodes hold. A frame captured before the
newest accepted frame of its camera (an HTTP request overtaken by the next
one) is dropped as `stale`, never shown. A worker thread per
camera takes the newest image, runs the processing step and the overlay, and
publishes to the hub. A slow processing step therefore drops frames (counted)
instead of queueing them: frame age stays bounded.

A camera exists only once a frame of it is accepted: a refused frame never
takes a camera slot. A camera that sends nothing for `forget_after` seconds
is forgotten: its worker stops, its channel closes, its metric series go. The
default camera is never forgotten, only its image is released.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from framewire.channel import Channel
from framewire.config import ReceiverConfig
from framewire.frame import Frame, WireError, check_captured, decode
from framewire.hub import Hub
from framewire.lanes import usable_cores
from framewire.mailbox import Mailbox
from framewire.metrics import ReceiverMetrics
from framewire.overlay import Strip, strip_height
from framewire.processing import Processor, ProcessorFactory, passthrough
from framewire.resilience import Worker

log = logging.getLogger(__name__)

JOIN_TIMEOUT = 2.0  # seconds a camera worker may take to finish its frame when stopped


class _Camera:
    """One camera's mailbox and the worker thread that processes its newest frame."""

    def __init__(self, pipeline: Pipeline, channel: Channel) -> None:
        self.pipeline = pipeline
        self.channel = channel
        self.labels = (channel.camera, pipeline.transport)
        self.mailbox: Mailbox[tuple[int, int, np.ndarray, bytes, bool]] = Mailbox(
            lambda _: channel.figures.count_drop("process")
        )
        self.last_accepted = time.monotonic()
        self.newest_ns = -1  # capture time of the newest accepted frame: older ones are stale
        self._failing = False
        self.worker = Worker(f"process-{channel.camera}", self._run, JOIN_TIMEOUT)
        self.worker.start()

    def _run(self) -> None:
        processor = self._make_processor()
        metrics = self.pipeline.metrics
        fps_gauge = metrics.receive_fps.labels(*self.labels)
        process_seconds = metrics.process_seconds.labels(*self.labels)
        strip = Strip(self.pipeline.transport, self.channel.camera)
        while not self.worker.stopping.is_set():
            item = self.mailbox.get(timeout=1.0)
            if self.worker.stopping.is_set():
                return
            if item is None:
                fps_gauge.set(self.channel.figures.fps())
                continue
            seq, captured_ns, image, jpeg, narrowed = item
            started = time.perf_counter()
            image = self._process(processor, image)
            # Only `none` leaves the picture as decoded outside the annotation: then the viewer's
            # full-size encode may splice a re-encoded band into the sender's JPEG (splice.py).
            original = jpeg if processor is passthrough and not narrowed else None
            fps = self.channel.figures.fps()
            under = image[: strip_height(image.shape[1])].copy()  # for the strip-less variants
            strip.draw(image, seq, fps, self.channel.figures.served_latency_ms())
            process_seconds.observe(time.perf_counter() - started)
            fps_gauge.set(fps)
            self.channel.publish(image, seq, captured_ns, original, narrowed, under)

    def _make_processor(self) -> Processor:
        """The camera's processor, made on its own thread; passthrough if it cannot be made."""
        try:
            return self.pipeline.processor_factory()
        except Exception:
            self.pipeline.receive_error("processor")
            log.exception("cannot make the processor of camera %s", self.channel.camera)
            return passthrough

    def _process(self, processor: Processor, image: np.ndarray) -> np.ndarray:
        try:
            result = processor(image)
        except Exception:
            self.pipeline.receive_error("processor")
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

    def signal_stop(self) -> None:
        """Ask the worker to end without waiting (so several can be joined in parallel)."""
        self.worker.stopping.set()
        self.mailbox.close()

    def stop(self) -> bool:
        """End the worker and join it within JOIN_TIMEOUT; True if it ended."""
        return self.worker.stop(self.mailbox.close)


class Pipeline:
    """Decode on ingest, then process and publish per camera, latest frame wins (a FrameSink)."""

    def __init__(
        self,
        hub: Hub,
        metrics: ReceiverMetrics,
        config: ReceiverConfig,
        processor_factory: ProcessorFactory,
    ) -> None:
        self.hub = hub
        self.metrics = metrics
        self.transport = config.transport
        self.processor_factory = processor_factory
        self.max_pixels = config.max_pixels
        self.forget_after = config.forget_after
        self.capture_window = (config.max_capture_ahead, config.max_capture_behind)
        self._cameras: dict[str, _Camera] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.decoders = config.decode_threads or usable_cores()
        self._decodes = threading.BoundedSemaphore(self.decoders)
        self._sweeper = Worker("forget", self._sweep_loop, JOIN_TIMEOUT)
        self._sweeper.start()

    def ingest(self, frame: Frame, skipped: int = 0) -> None:
        """Decode `frame` and queue it for processing; WireError refuses it.

        `skipped` older frames of the same camera arrived with it; they are
        counted as dropped at stage `receive` once this one is accepted. A
        refusal counts nothing here: the caller then calls `reject(reason,
        1 + skipped)`, which names no camera (the camera may not exist). Its
        reason is noted receiver-wide for /stats (`Hub.refused`).
        """
        try:
            self._ingest(frame, skipped)
        except WireError as exc:
            if exc.reason != "stopping":
                self.hub.refused.note(exc.reason, frame.camera, exc.detail)
            raise

    def _ingest(self, frame: Frame, skipped: int) -> None:
        check_captured(frame.camera, frame.captured_ns, time.time_ns(), *self.capture_window)
        known = self.hub.find(frame.camera)
        if known is None and self.hub.full():
            raise WireError("camera_limit", f"at most {self.hub.max_cameras} cameras")
        if self._closed:
            raise WireError("stopping", "the receiver is stopping")
        width = known.watchers.decode_width() if known is not None else None
        with self._decodes:
            started = time.perf_counter()
            image = decode(frame.jpeg, self.max_pixels, width)
            decode_seconds = time.perf_counter() - started
        with self._lock:  # the sweeper cannot forget the camera between these lines
            if self._closed:
                raise WireError("stopping", "the receiver is stopping")
            camera = self._cameras.get(frame.camera)
            if camera is None:
                channel = self.hub.add(frame.camera)  # WireError camera_limit if it filled up
                camera = self._cameras[frame.camera] = _Camera(self, channel)
            # Overtaken by a newer frame (checked after the decode: a bad frame is refused).
            if frame.captured_ns < camera.newest_ns:
                camera.channel.figures.count_drop("stale", 1 + skipped)
                return
            # At most the receiver's clock: a sender clock ahead (within the window) and then
            # set right must not leave its true frames stale until the clock catches up.
            camera.newest_ns = min(frame.captured_ns, time.time_ns())
            camera.last_accepted = time.monotonic()
            labels = camera.labels
            self.metrics.decode_seconds.labels(*labels).observe(decode_seconds)
            self.metrics.frames_received.labels(*labels).inc()
            self.metrics.frame_bytes.labels(*labels).observe(len(frame.jpeg))
            age = frame.age_seconds()
            self.metrics.frame_latency.labels(*labels, "received").observe(age)
            camera.channel.figures.latency_logs["received"].add(frame.captured_ns, age)
            if skipped:
                camera.channel.figures.count_drop("receive", skipped)
            # Decoded at a reduced scale for narrow variants (Watchers.decode_width)?
            narrowed = width is not None and image.shape[1] < 2 * width
            camera.mailbox.put((frame.seq, frame.captured_ns, image, frame.jpeg, narrowed))

    def reject(self, reason: str, count: int = 1) -> None:
        """Count refused frames."""
        self.metrics.frames_rejected.labels(self.transport, reason).inc(count)
        self.hub.refused.add(reason, count)

    def receive_error(self, reason: str) -> None:
        """Count a failure of the transport itself (or of the processing step)."""
        self.metrics.receive_errors.labels(self.transport, reason).inc()
        self.hub.receive_errors.add(reason)

    def sweep(self, now: float | None = None) -> list[str]:
        """Forget every camera idle for `forget_after` seconds; returns their ids."""
        now = time.monotonic() if now is None else now
        with self._lock:
            idle = [c for c in self._cameras.values() if now - c.last_accepted >= self.forget_after]
            for camera in idle:
                del self._cameras[camera.channel.camera]
                if camera.channel.camera != self.hub.default_camera:
                    self.hub.remove(camera.channel.camera)  # its streams end
        for camera in idle:
            camera.signal_stop()
        for camera in idle:
            camera.stop()
        with self._lock:  # its worker ended; unless a frame brought it back meanwhile:
            for camera in idle:
                name = camera.channel.camera
                if name in self._cameras:
                    continue
                if name == self.hub.default_camera:  # known from start: only its image goes
                    camera.channel.slot.release()
                    self.metrics.receive_fps.labels(*camera.labels).set(0)
                else:
                    self._remove_series(name)
        if idle:
            log.info("forgot idle cameras: %s", ", ".join(c.channel.camera for c in idle))
        return [c.channel.camera for c in idle]

    def _sweep_loop(self) -> None:
        interval = min(1.0, self.forget_after / 4)
        while not self._sweeper.stopping.wait(interval):
            self.sweep()

    def _remove_series(self, camera: str) -> None:
        """Remove every metric series labelled with `camera`."""
        m = self.metrics
        for metric in (
            m.frames_dropped,
            m.frames_received,
            m.receive_fps,
            m.viewers,
            m.decode_seconds,
            m.process_seconds,
            m.frame_bytes,
            m.frame_latency,
            m.viewer_encodes,
            m.viewer_encode_path,
        ):
            metric.remove_by_labels({"camera": camera, "transport": self.transport})

    def close(self) -> None:
        """Stop the sweeper and every camera worker, joining each within a bound."""
        self._sweeper.stop()
        with self._lock:
            self._closed = True
            cameras = list(self._cameras.values())
            self._cameras.clear()
        for camera in cameras:
            camera.signal_stop()
        for camera in cameras:
            camera.stop()
