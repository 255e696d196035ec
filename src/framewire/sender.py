"""`framewire send`: capture, encode each frame once, fan out to every transport.

One sender runs one or many cameras (`Sender`); each camera (`CameraSender`)
has its own threads and mailboxes and shares nothing with the others but the
metrics registry, so a dead or slow camera never stalls another.

Per camera, the grab thread drains the source into a one-slot mailbox; the
camera's encode loop waits until at least one transport can take a frame (encode on demand: no
frame is encoded only to be replaced unsent), takes the newest frame,
resizes it to the wire size if `--width`/`--height` ask for one (once, for every transport),
JPEG-encodes it once (a restart marker every MCU row, for the receivers' band
splice: splice.py) and puts the bytes into each transport's own one-slot
mailbox. Each transport sends on its own thread, so
a slow or dead transport drops frames (counted) and never stalls capture or
the other transport. With `--http-fanout dns` the HTTP transport is one worker
per HTTP receiver replica (fanout.py), each with its own mailbox and thread, and
each camera's frames go to its owner's only; a replica whose send finds no
answer leaves the live set at once (`fanout.not_answering`), and is probed with
`GET /healthz` (`fanout.replica_probe`) until it answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from urllib.parse import urlsplit

import cv2
from prometheus_client import Counter

from framewire.config import SenderConfig
from framewire.fanout import CameraReplicas, Replicas, not_answering, replicas_for
from framewire.frame import Frame
from framewire.mailbox import Mailbox
from framewire.metrics import RateMeter, SenderMetrics
from framewire.resilience import Backoff, UpDown, Worker
from framewire.sources import Grabber, Source, open_source, resized
from framewire.splice import encode_params
from framewire.transports import FrameSender, PublishError
from framewire.transports.http_plug import http_sender
from framewire.transports.redis_connect import LazyClient
from framewire.transports.redis_presence import SourcePresence
from framewire.transports.registry import TRANSPORTS

log = logging.getLogger(__name__)


def publishers(config: SenderConfig) -> list[list[FrameSender]]:
    """The transports `config` turns on (their URL set), each as its senders (one per request
    in flight), in the registry's order; a transport with none (HTTP under DNS fan-out: the
    camera's `Replicas` holds one set per replica) is left out."""
    found = [t.senders(config) for t in TRANSPORTS.values() if getattr(config, t.url)]
    return [senders for senders in found if senders]


class TransportWorker:
    """Sends the newest frame through one transport: a thread per publisher (each one request
    in flight), all taking from one mailbox; each backs off while it fails.

    With two or more, the next frame leaves while the previous one's answer is on its way
    (HTTP waits for the receiver's decode); the receiver drops one overtaken as stale.
    """

    def __init__(
        self,
        publishers: list[FrameSender],
        camera: str,
        metrics: SenderMetrics,
        on_taken: Callable[[], None] = lambda: None,
        replica: str = "",
        on_failed: Callable[[PublishError], None] = lambda _: None,
    ) -> None:
        """`replica`: the address of one HTTP receiver replica (DNS fan-out), counted apart too;
        `on_failed` hears of every failed send."""
        self.publishers = publishers
        publisher = publishers[0]
        self.name, self.target = publisher.name, publisher.target
        self._on_taken = on_taken
        labels = (camera, publisher.name)
        drops = [metrics.frames_dropped.labels(*labels, "send")]
        self._sent = [metrics.frames_sent.labels(*labels)]
        self._lost: list[Counter] = []  # a failed send is a drop for a replica's own count
        self._on_failed = on_failed
        if replica:
            self._lost = [metrics.replica_frames_dropped.labels(camera, replica)]
            drops += self._lost
            self._sent.append(metrics.replica_frames_sent.labels(camera, replica))
        self.mailbox: Mailbox[Frame] = Mailbox(lambda _: [c.inc() for c in drops])
        self._send_seconds = metrics.send_seconds.labels(*labels)
        self._errors = metrics.send_errors
        self._labels = labels
        what = f"camera {camera}: {publisher.name} transport"
        self._state = UpDown(what, publisher.target, logger=log)
        suffix = f"-{replica}" if replica else ""
        self._stopping = threading.Event()
        self._retry = threading.Event()  # cuts a backoff short: stopping, or `retry_now`
        self._workers = [
            Worker(f"send-{camera}-{self.name}{suffix}-{i}", partial(self._run, p, self._stopping))
            for i, p in enumerate(publishers)
        ]

    @property
    def has_room(self) -> bool:
        return self.mailbox.empty

    def put(self, frame: Frame) -> None:
        self.mailbox.put(frame)

    def start(self) -> None:
        for worker in self._workers:
            worker.start()

    def retry_now(self) -> None:
        """Send the next frame at once, whatever the backoff (its receiver answers again)."""
        self._retry.set()

    def stop(self) -> None:
        """Join the threads (a send in progress ends within its timeout), then close."""
        self._stopping.set()
        self._retry.set()
        self.mailbox.close()
        for worker in self._workers:
            worker.stop()
        for publisher in self.publishers:
            publisher.close()

    def _run(self, publisher: FrameSender, stopping: threading.Event) -> None:
        backoff = Backoff(0.05, publisher.retry_cap)
        while not stopping.is_set():
            frame = self.mailbox.get(timeout=0.5)
            if frame is None:
                continue
            self._on_taken()
            started = time.perf_counter()
            try:
                publisher.send(frame)
            except PublishError as exc:
                self._errors.labels(*self._labels, exc.reason).inc()
                for lost in self._lost:
                    lost.inc()
                self._state.set(False, f"{exc.reason}: {exc}")
                self._on_failed(exc)
                # Frames that arrive while we wait replace each other and are counted as drops.
                backoff.wait(self._retry)
                if not stopping.is_set():
                    self._retry.clear()
                continue
            self._send_seconds.observe(time.perf_counter() - started)
            for sent in self._sent:
                sent.inc()
            self._state.set(True)
            backoff.reset()


class CameraSender:
    """One camera: its grab thread, its encode loop and one worker per transport.

    With `http_fanout` dns, the HTTP transport is a `CameraReplicas` following `replicas` (the
    live replicas, shared by the cameras of a `Sender`); without one given, the camera keeps
    its own.
    """

    def __init__(
        self,
        config: SenderConfig,
        source: Source,
        publishers: list[list[FrameSender]],
        metrics: SenderMetrics | None = None,
        replicas: Replicas | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.metrics = metrics or SenderMetrics()
        camera = config.camera
        m = self.metrics
        m.source_up.labels(camera).set(0)
        m.source_reconnects.labels(camera)
        m.frames_captured.labels(camera)
        dropped = m.frames_dropped.labels(camera, "none", "capture")
        self.grabber = Grabber(
            source,
            on_state=self._source_state,
            on_reconnect=m.source_reconnects.labels(camera).inc,
            on_drop=lambda _: dropped.inc(),
            stale_after=config.read_timeout,
            what=f"camera {camera} source",
        )
        self._room = threading.Condition()  # notified when a transport takes a frame
        self.workers: list[TransportWorker | CameraReplicas] = [
            TransportWorker(p, camera, m, self._taken) for p in publishers
        ]
        self._own_replicas: Replicas | None = None
        self.replicas = replicas
        if config.http_url and config.http_fanout == "dns":
            if replicas is None:
                replicas = self.replicas = self._own_replicas = replicas_for(config)
            owned = CameraReplicas(
                config.http_url, camera, replicas, self._replica_worker, m, self._taken
            )
            self.workers.insert(0, owned)
        self._stop = threading.Event()
        self._rate = RateMeter()
        self.source_up = False
        self.on_source_state: Callable[[], None] = lambda: None  # told of each change

    def _source_state(self, up: bool) -> None:
        self.source_up = up
        self.metrics.source_up.labels(self.config.camera).set(1 if up else 0)
        self.on_source_state()

    def run(self) -> None:
        """Capture and fan out until `stop()` is called (on the caller's thread)."""
        camera, m = self.config.camera, self.metrics
        captured = m.frames_captured.labels(camera)
        encode_seconds = m.encode_seconds.labels(camera)
        frame_bytes = m.frame_bytes.labels(camera)
        fps = m.capture_fps.labels(camera)
        for worker in self.workers:
            worker.start()
        if self._own_replicas is not None:
            self._own_replicas.start()
        self.grabber.start()
        seq = 0
        try:
            while not self._stop.is_set():
                if not self._wait_for_room(timeout=0.25):  # every transport still busy
                    self.grabber.check_stale()
                    continue
                item = self.grabber.frames.get(timeout=0.25)
                if item is None:
                    fps.set(self._rate.rate())
                    self.grabber.check_stale()
                    continue
                captured.inc()
                self._rate.tick()
                fps.set(self._rate.rate())
                started = time.perf_counter()
                image = resized(item.image, self.config.width, self.config.height)
                params = encode_params(self.config.quality, image)
                ok, buffer = cv2.imencode(".jpg", image, params)
                encode_seconds.observe(time.perf_counter() - started)
                if not ok:
                    log.error("JPEG encode failed for frame of shape %s", image.shape)
                    continue
                seq += 1
                frame = Frame(camera, seq, item.captured_ns, buffer.tobytes())
                frame_bytes.observe(len(frame.jpeg))
                for worker in self.workers:
                    worker.put(frame)
        finally:
            self.grabber.stop()
            if self._own_replicas is not None:
                self._own_replicas.stop()
            for worker in self.workers:
                worker.stop()

    def stop(self) -> None:
        self._stop.set()
        self._taken()

    def _replica_worker(self, url: str, address: str) -> TransportWorker:
        """The worker of one HTTP receiver replica: its own publisher, mailbox and thread."""
        # The replica is dialled at its address and verified as the URL's host name.
        name = urlsplit(self.config.http_url).hostname or ""
        senders: list[FrameSender] = [
            http_sender(self.config, url, name) for _ in range(self.config.http_inflight)
        ]
        replicas = self.replicas

        def failed(exc: PublishError) -> None:
            if replicas is not None and not_answering(exc):
                replicas.failed(address, f"{exc.reason}: {exc}")

        return TransportWorker(
            senders, self.config.camera, self.metrics, self._taken, address, failed
        )

    def _taken(self) -> None:
        with self._room:
            self._room.notify_all()

    def _wait_for_room(self, timeout: float) -> bool:
        """Wait until some transport can take a frame: encode on demand, never for nothing."""
        with self._room:
            return self._room.wait_for(
                lambda: self._stop.is_set() or any(w.has_room for w in self.workers),
                timeout,
            )


class Sender:
    """Every camera of one `framewire send`, each on its own threads, one metrics registry."""

    def __init__(self, cameras: list[SenderConfig], metrics: SenderMetrics | None = None) -> None:
        self.metrics = metrics or SenderMetrics()
        # One live set of replicas per fanned-out HTTP URL, shared by every camera sending there.
        self.replicas: dict[tuple[str, float], Replicas] = {}
        for config in cameras:
            if config.http_url and config.http_fanout == "dns":
                key = (config.http_url, config.http_resolve_every)
                self.replicas.setdefault(key, replicas_for(config))
        self.cameras = [
            CameraSender(
                config,
                camera_source(config),
                publishers(config),
                self.metrics,
                self.replicas.get((config.http_url, config.http_resolve_every)),
            )
            for config in cameras
        ]
        self.presences = source_presences(self.cameras)
        self._stop = threading.Event()

    def run(self) -> None:
        """Run every camera until `stop()` is called; then stop them all, each within its bound."""
        runners = [
            Worker(f"camera-{c.config.camera}", c.run, join_timeout=c.config.read_timeout + 8.0)
            for c in self.cameras
        ]
        for runner in runners:
            runner.start()
        for replicas in self.replicas.values():
            replicas.start()
        for presence in self.presences:
            presence.start()
        try:
            self._stop.wait()
        finally:
            for camera in self.cameras:
                camera.stop()
            for runner in runners:
                runner.stop()
            for replicas in self.replicas.values():
                replicas.stop()
            for presence in self.presences:
                presence.stop()

    def stop(self) -> None:
        self._stop.set()


def source_presences(cameras: list[CameraSender]) -> list[SourcePresence]:
    """One writer of the cameras' source states per Redis the cameras send through (streams),
    so a Redis receiver can say "source down at the sender" (redis_presence.py)."""
    by_redis: dict[tuple[str, str, str], list[CameraSender]] = {}
    for camera in cameras:
        c = camera.config
        if c.redis_url and c.redis_mode == "stream":
            by_redis.setdefault((c.redis_url, c.redis_ca_cert, c.redis_cluster), []).append(camera)
    presences = []
    for (url, ca_cert, cluster), group in by_redis.items():
        timeout = group[0].config.redis_timeout
        presence = SourcePresence(
            LazyClient(url, timeout, timeout, ca_cert, cluster),
            lambda group=group: {c.config.camera: c.source_up for c in group},
        )
        for camera in group:
            camera.on_source_state = presence.changed
        presences.append(presence)
    return presences


def camera_source(config: SenderConfig) -> Source:
    """The source of one camera's config."""
    return open_source(
        config.source,
        config.width,
        config.height,
        config.fps,
        config.open_timeout,
        config.read_timeout,
        config.synthetic_phase,
    )
