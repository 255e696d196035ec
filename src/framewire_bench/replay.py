"""The replay producer: ready JPEGs into Redis at a camera's rate, with no encode per frame.

`python -m framewire_bench.replay --redis-url URL --cameras N ...` is what the
replicas mode runs instead of `framewire send` with `--replicas-producer
replay`: it takes the sender's JPEG encode (about 8 % of a core per 720p30
camera) out of the machine's budget, so what a trial measures is the receivers.

At start it draws `--frames` frames (30: one second) of the sender's own
synthetic pattern (framewire.sources.SyntheticSource, unthrottled) and encodes
each once with the sender's parameters (framewire.splice.encode_params: the
quality and a restart marker every MCU row), so a receiver decodes exactly what
it decodes from the real sender. The cameras share that loop, each starting at
its own frame. Then one thread, one paced loop over every camera (a heap of
next ticks on the monotonic clock; each camera at a random phase within its
period, as `framewire send --synthetic-phase spread` does; no banking after a
stall, missed ticks are skipped and counted), XADDs each camera's next frame
with the wire contract's RedisSender (`send(jpeg, camera=..., captured_ns=...)`).

`captured_ns` is the time of the XADD: latency measured from it leaves out the
encode the real sender does before it (about 4-5 ms at 720p, as the sender's
`framewire_encode_seconds` shows), so the capacity rule's p95 is slightly easier.

Its metrics (`--metrics-bind`) are the sender's names: frames captured (ticks)
and sent to Redis per camera, send errors, drops (skipped ticks), send seconds.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import signal
import threading
import time
from collections.abc import Iterator, Sequence

import cv2
from prometheus_client import start_http_server

from framewire.client import PublishError, RedisSender
from framewire.metrics import SenderMetrics
from framewire.sources import SyntheticSource
from framewire.splice import encode_params
from framewire.transports import FrameSender
from framewire.urls import parse_bind

LOOP_FRAMES = 30
QUALITY = 80  # the capacity mode's cameras' (capacity.QUALITY)
RETRY_SECONDS = 0.2  # after a failed send, that camera's next tick waits at least this


def encode_loop(width: int, height: int, frames: int, quality: int) -> list[bytes]:
    """`frames` successive pictures of the synthetic pattern, each encoded as the sender does."""
    source = SyntheticSource(width, height, 0.0)  # unthrottled: no pacing while drawing
    loop = []
    for _ in range(frames):
        image = source.read()
        ok, buffer = cv2.imencode(".jpg", image, encode_params(quality, image))
        if not ok:  # pragma: no cover - imencode of a valid image does not fail
            raise RuntimeError("JPEG encode failed")
        loop.append(buffer.tobytes())
    return loop


def first_ticks(
    cameras: Sequence[str], fps: float, now: float, rng: random.Random
) -> list[tuple[float, int]]:
    """Each camera's first tick after `now` on the monotonic grid of its random phase."""
    period = 1.0 / fps
    ticks = []
    for index in range(len(cameras)):
        phase = rng.uniform(0.0, period)
        ticks.append((phase + math.ceil((now - phase) / period) * period, index))
    heapq.heapify(ticks)
    return ticks


def next_tick(tick: float, period: float, now: float) -> tuple[float, int]:
    """The tick after `tick`, and how many were missed (never banked: a stall skips them)."""
    following = tick + period
    behind = now - following
    if behind <= 0:
        return following, 0
    missed = math.ceil(behind / period)
    return following + missed * period, missed


class Replay:
    """One paced loop XADDing a pre-encoded loop of frames for every camera."""

    def __init__(
        self,
        sender: FrameSender,
        cameras: Sequence[str],
        loop: Sequence[bytes],
        fps: float,
        metrics: SenderMetrics | None = None,
        seed: int | None = None,
    ) -> None:
        self.sender, self.cameras, self.loop, self.fps = sender, list(cameras), list(loop), fps
        self.metrics = metrics or SenderMetrics()
        self._rng = random.Random(seed)
        self._stop = threading.Event()

    def frames(self, index: int) -> Iterator[bytes]:
        """Camera `index`'s frames: the loop, from its own starting frame, round and round."""
        start = index * 7 % len(self.loop)  # neighbours start apart
        while True:
            yield from self.loop[start:]
            yield from self.loop[:start]
            start = 0

    def run(self) -> None:
        """XADD every camera's frames at `fps` until `stop()`."""
        m, period = self.metrics, 1.0 / self.fps
        names = self.cameras
        captured = [m.frames_captured.labels(c) for c in names]
        sent = [m.frames_sent.labels(c, "redis") for c in names]
        seconds = [m.send_seconds.labels(c, "redis") for c in names]
        missed = [m.frames_dropped.labels(c, "none", "capture") for c in names]
        for camera in names:
            m.source_up.labels(camera).set(1)
        frames = [self.frames(i) for i in range(len(names))]
        ticks = first_ticks(names, self.fps, time.monotonic(), self._rng)
        while not self._stop.is_set():
            tick, index = ticks[0]
            wait = tick - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            captured[index].inc()
            started = time.perf_counter()
            try:
                self.sender.send(next(frames[index]), names[index], captured_ns=time.time_ns())
            except PublishError as exc:
                m.send_errors.labels(names[index], "redis", exc.reason).inc()
                tick = max(tick, time.monotonic() + RETRY_SECONDS - period)
            else:
                seconds[index].observe(time.perf_counter() - started)
                sent[index].inc()
            following, skipped = next_tick(tick, period, time.monotonic())
            if skipped:
                missed[index].inc(skipped)
            heapq.heapreplace(ticks, (following, index))

    def stop(self) -> None:
        self._stop.set()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m framewire_bench.replay", description=__doc__)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--cameras", type=int, required=True, help="cam0 .. cam{N-1}")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--quality", type=int, default=QUALITY)
    parser.add_argument("--frames", type=int, default=LOOP_FRAMES, help="the loop's length")
    parser.add_argument("--metrics-bind", default="", help="HOST:PORT of /metrics")
    args = parser.parse_args(argv)
    if args.cameras < 1 or args.frames < 1 or args.fps <= 0:
        parser.error("--cameras, --frames and --fps must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    names = [f"cam{i}" for i in range(args.cameras)]  # capacity.camera_ids
    loop = encode_loop(args.width, args.height, args.frames, args.quality)
    sender = RedisSender(args.redis_url, camera=names[0], quality=args.quality)
    replay = Replay(sender, names, loop, args.fps)
    signal.signal(signal.SIGTERM, lambda *_: replay.stop())
    signal.signal(signal.SIGINT, lambda *_: replay.stop())
    if args.metrics_bind:  # once the loop is encoded: ready means sending from now on
        host, port = parse_bind(args.metrics_bind)
        start_http_server(port, host, registry=replay.metrics.registry)
    try:
        replay.run()
    finally:
        sender.close()


if __name__ == "__main__":
    main()
