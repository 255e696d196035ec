"""Decode runs in parallel across cameras, latest frame wins per camera; HTTP's overtaken frames
are dropped as stale."""

from __future__ import annotations

import threading
import time

import requests

from conftest import RedisServer, Services, scrape, wait_until
from framewire.frame import Frame
from framewire.transports import http as http_wire
from framewire.transports import redis as redis_wire
from framewire.transports.redis_consumers import StreamConsumer
from helpers import make_jpeg


class BlockingSink:
    """A FrameSink whose ingest of camera `slow` blocks until `release` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.slow_started = threading.Event()
        self.frames: list[tuple[str, int, int]] = []  # camera, seq, skipped
        self._lock = threading.Lock()

    def ingest(self, frame: Frame, skipped: int = 0) -> None:
        if frame.camera == "slow":
            self.slow_started.set()
            self.release.wait(30)
        with self._lock:
            self.frames.append((frame.camera, frame.seq, skipped))

    def seqs(self, camera: str) -> list[int]:
        with self._lock:
            return [seq for name, seq, _ in self.frames if name == camera]

    def reject(self, reason: str, count: int = 1) -> None:
        raise AssertionError(f"refused: {reason}")

    def receive_error(self, reason: str) -> None:
        pass


def test_a_camera_stuck_in_decode_does_not_delay_another(redis_server: RedisServer) -> None:
    """Real Redis, two decoder threads: while camera `slow` is held in its decode, camera `fast`
    keeps flowing; `slow`'s later entries wait in its lane as one (the newest), the rest counted
    as skipped."""
    client = redis_server.client()
    jpeg = make_jpeg(64, 48)

    def add(camera: str, seq: int) -> None:
        fields = redis_wire.stream_fields(Frame(camera, seq, time.time_ns(), jpeg))
        client.xadd(redis_wire.key("stream", camera), fields)  # type: ignore[arg-type]

    sink = BlockingSink()
    consumer = StreamConsumer(redis_server.url, sink, cameras=["slow", "fast"], decoders=2)
    consumer.discover()
    consumer.start()
    try:
        add("slow", 1)
        assert sink.slow_started.wait(10), "camera slow never reached its decode"
        for seq in range(1, 6):
            # Piles up behind the held decode: only the newest stays. Added before the fast frame,
            # so the read that brings that one brings this too (XREAD replies in key order:
            # slow first), and it is in its lane once the fast frame is ingested.
            add("slow", seq + 1)
            add("fast", seq)
            wait_until(lambda s=seq: s in sink.seqs("fast"), what=f"fast frame {seq}")
        assert sink.seqs("slow") == []  # frame 1 still held: the fast camera never waited on it
        sink.release.set()
        wait_until(lambda: 6 in sink.seqs("slow"), what="slow's newest frame")
        assert sink.seqs("slow") == [1, 6]
        skipped = sum(k for name, _, k in sink.frames if name == "slow")
        assert skipped == 4  # entries 2-5 overtaken while waiting: counted, never ingested
    finally:
        sink.release.set()
        assert consumer.stop()


def test_an_http_frame_overtaken_by_a_newer_one_is_dropped_as_stale(services: Services) -> None:
    """Two requests of one camera in flight may finish out of order: the one captured first,
    arriving last, gets 204 but is never shown, and is counted as a `stale` drop."""
    receiver = services.receiver("http", "--stale-after", "30")
    now = time.time_ns()
    newer = Frame("door", 2, now, make_jpeg(160, 120, seed=2))
    older = Frame("door", 1, now - 30_000_000, make_jpeg(160, 120, seed=1))
    for frame in (newer, older):  # the older one arrives last
        response = requests.post(
            f"{receiver.url}/frames", data=frame.jpeg, headers=http_wire.headers(frame), timeout=10
        )
        assert response.status_code == 204, response.text
    labels = {"camera": "door", "transport": "http"}
    assert scrape(receiver.url, "framewire_frames_dropped_total", **labels, stage="stale") == 1
    assert scrape(receiver.url, "framewire_frames_received_total", **labels) == 1

    def snapshot() -> requests.Response | None:
        r = requests.get(f"{receiver.url}/snapshot/door.jpg", timeout=5)
        return r if r.status_code == 200 else None

    assert wait_until(snapshot, what="door's snapshot").headers["X-Framewire-Seq"] == "2"
