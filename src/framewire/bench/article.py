"""The article's whole design, rebuilt as a baseline for `framewire bench`.

framewire grew out of an article that passed camera frames between Python
processes. Its `form-base64` and `set-publish` modes copy only the article's
wire format onto framewire's pipeline; this module copies the design too, so
`article-http` and `article-redis` measure what the article actually built:

- sender: a capture thread reads the source, JPEG-encodes each frame and puts
  it on a `queue.LifoQueue`; a sending loop takes the newest frame, sleeping
  10 ms whenever the queue is empty (LIFO: an older frame is sent when no
  newer one arrived in between);
- HTTP: `requests.post(url, data={...})`, a new connection per frame, base64
  JPEG in a form field, to a Flask development server (`app.run`, threaded);
  the route decodes base64 and the JPEG and stores the latest frame;
- Redis: `SET` the base64 JPEG (JSON with the metadata) under a key,
  `PUBLISH` the key's name; the receiver subscribes, `GET`s the key on every
  message, decodes, then `SET`s a receive-time key, which the sender polls
  every 10 ms before it sends the next frame;
- receiver: a display loop polls the latest frame every 10 ms and "shows"
  it (the article opened a desktop window; here it just takes the frame).

Not the article's, so the bench can read it like framewire: each side exports
framewire's metric names (capture time rides in the form / value; latency
`received` is capture to decoded, `served` capture to displayed), the capture
thread's queue is capped at `QUEUE_CAP` frames (emptied when full, counted as
`capture` drops) so an unthrottled source cannot exhaust memory, and the
Redis sender stops waiting for the receive-time key after `WAIT_TIMEOUT`.

Run one side: `python -m framewire.bench.article {http,redis}-{sender,receiver} ...`.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import redis
import requests
from flask import Flask, Response, request
from prometheus_client import generate_latest, start_http_server

from framewire.bench.stack import Service, Services, free_port
from framewire.metrics import ReceiverMetrics, SenderMetrics
from framewire.sources import SyntheticSource

POLL = 0.01  # the article's sleep when there is nothing to do
QUEUE_CAP = 32
WAIT_TIMEOUT = 1.0
QUALITY = 80  # framewire's default JPEG quality
FRAME_KEY = "article:frame:{camera}"
NOTIFY_CHANNEL = "article:notify:{camera}"
RECEIVED_KEY = "article:received:{camera}"


@dataclass(frozen=True)
class Encoded:
    """One captured frame as the sender queues it."""

    seq: int
    captured_ns: int
    jpeg: bytes


# --- the sending side ---------------------------------------------------------------------------


class Capture(threading.Thread):
    """Reads the source, encodes each frame and pushes it on a LIFO queue."""

    def __init__(
        self, args: argparse.Namespace, metrics: SenderMetrics, frames: queue.LifoQueue[Encoded]
    ) -> None:
        super().__init__(daemon=True, name="article-capture")
        self.source = SyntheticSource(args.width, args.height, args.fps)
        self.camera, self.metrics, self.frames = args.camera, metrics, frames

    def run(self) -> None:
        params = [cv2.IMWRITE_JPEG_QUALITY, QUALITY]
        self.source.open()
        for seq in itertools.count():
            image = self.source.read()
            captured_ns = time.time_ns()
            self.metrics.frames_captured.labels(self.camera).inc()
            ok, buffer = cv2.imencode(".jpg", image, params)
            if not ok:
                continue
            if self.frames.full():  # not the article's: a cap instead of unbounded memory
                dropped = 0
                while not self.frames.empty():
                    self.frames.get_nowait()
                    dropped += 1
                self.metrics.frames_dropped.labels(self.camera, "none", "capture").inc(dropped)
            self.frames.put(Encoded(seq, captured_ns, buffer.tobytes()))


def send_loop(
    frames: queue.LifoQueue[Encoded],
    send: Callable[[Encoded], None],
    metrics: SenderMetrics,
    camera: str,
    transport: str,
) -> None:
    """Take the newest frame (sleeping 10 ms while there is none) and send it, forever."""
    while True:
        try:
            frame = frames.get_nowait()
        except queue.Empty:
            time.sleep(POLL)
            continue
        try:
            send(frame)
        except (requests.RequestException, redis.RedisError) as exc:
            reason = type(exc).__name__
            metrics.send_errors.labels(camera, transport, reason).inc()
            time.sleep(POLL)
            continue
        metrics.frames_sent.labels(camera, transport).inc()


def http_sender(args: argparse.Namespace) -> None:
    """POST each frame as a base64 form field, a new connection every time."""

    def send(frame: Encoded) -> None:
        form = {
            "camera": args.camera,
            "seq": str(frame.seq),
            "captured_ns": str(frame.captured_ns),
            "image": base64.b64encode(frame.jpeg).decode("ascii"),
        }
        requests.post(args.url, data=form, timeout=10).raise_for_status()  # no Session

    run_sender(args, "http", send)


def redis_sender(args: argparse.Namespace) -> None:
    """SET the frame, PUBLISH its key, then poll the receive-time key until it is handled."""
    client = redis.Redis.from_url(args.redis_url, protocol=2)
    key, received = FRAME_KEY.format(camera=args.camera), RECEIVED_KEY.format(camera=args.camera)
    channel = NOTIFY_CHANNEL.format(camera=args.camera)
    seen: list[bytes | None] = [client.get(received)]  # the receive time last seen

    def send(frame: Encoded) -> None:
        value = {
            "camera": args.camera,
            "seq": frame.seq,
            "captured_ns": frame.captured_ns,
            "image": base64.b64encode(frame.jpeg).decode("ascii"),
        }
        client.set(key, json.dumps(value))
        client.publish(channel, key)
        deadline = time.monotonic() + WAIT_TIMEOUT
        while time.monotonic() < deadline:  # until the receive time changes
            handled = client.get(received)
            if handled != seen[0]:
                seen[0] = handled
                return
            time.sleep(POLL)

    run_sender(args, "redis", send)


def run_sender(args: argparse.Namespace, transport: str, send: Callable[[Encoded], None]) -> None:
    metrics = SenderMetrics()
    start_http_server(args.metrics_port, addr="127.0.0.1", registry=metrics.registry)
    frames: queue.LifoQueue[Encoded] = queue.LifoQueue(maxsize=QUEUE_CAP)
    Capture(args, metrics, frames).start()
    send_loop(frames, send, metrics, args.camera, transport)


# --- the receiving side -------------------------------------------------------------------------


class Latest:
    """The newest decoded frame, what the display loop shows, and the metrics of both."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.metrics = ReceiverMetrics()
        self.lock = threading.Lock()
        self.frame: tuple[str, int, int, np.ndarray] | None = None

    def store(self, camera: str, seq: int, captured_ns: int, jpeg: bytes) -> bool:
        """Decode the JPEG and keep it as the latest frame; False when it does not decode."""
        started = time.perf_counter()
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            self.metrics.frames_rejected.labels(self.transport, "undecodable").inc()
            return False
        m, labels = self.metrics, (camera, self.transport)
        m.decode_seconds.labels(*labels).observe(time.perf_counter() - started)
        m.frames_received.labels(*labels).inc()
        m.frame_bytes.labels(*labels).observe(len(jpeg))
        m.frame_latency.labels(*labels, "received").observe((time.time_ns() - captured_ns) / 1e9)
        with self.lock:
            self.frame = (camera, seq, captured_ns, image)
        return True

    def display_loop(self) -> None:
        """Poll the latest frame every 10 ms and take each new one (the article's window)."""
        shown: tuple[str, int] | None = None
        while True:
            with self.lock:
                frame = self.frame
            if frame is None or frame[:2] == shown:
                time.sleep(POLL)
                continue
            camera, seq, captured_ns, _image = frame
            shown = (camera, seq)
            latency = (time.time_ns() - captured_ns) / 1e9
            self.metrics.frame_latency.labels(camera, self.transport, "served").observe(latency)

    def start_display(self) -> None:
        threading.Thread(target=self.display_loop, daemon=True, name="article-display").start()


def http_app(latest: Latest) -> Flask:
    """The article's Flask app: a form post of a base64 JPEG, and /metrics for the bench."""
    app = Flask("article")

    @app.post("/frames")
    def frames() -> tuple[str, int]:
        form = request.form
        try:
            camera, seq, captured_ns = form["camera"], int(form["seq"]), int(form["captured_ns"])
            jpeg = base64.b64decode(form["image"], validate=True)
        except (KeyError, ValueError):
            latest.metrics.frames_rejected.labels("http", "bad_form").inc()
            return "bad form", 400
        if not latest.store(camera, seq, captured_ns, jpeg):
            return "undecodable", 422
        return "ok", 200

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(latest.metrics.registry), mimetype="text/plain")

    return app


def http_receiver(args: argparse.Namespace) -> None:
    latest = Latest("http")
    latest.start_display()
    http_app(latest).run(host="127.0.0.1", port=args.port)  # the development server, threaded


def redis_receiver(args: argparse.Namespace) -> None:
    """Subscribe; on each message GET the key, decode, then SET the receive-time key."""
    latest = Latest("redis")
    start_http_server(args.metrics_port, addr="127.0.0.1", registry=latest.metrics.registry)
    latest.start_display()
    client = redis.Redis.from_url(args.redis_url, protocol=2)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(NOTIFY_CHANNEL.format(camera=args.camera))
    for message in pubsub.listen():
        raw = client.get(message["data"])
        try:
            value = json.loads(raw or b"")
            jpeg = base64.b64decode(value["image"], validate=True)
            seq, captured_ns = int(value["seq"]), int(value["captured_ns"])
            camera = str(value["camera"])
        except (KeyError, ValueError, TypeError):
            latest.metrics.frames_rejected.labels("redis", "bad_value").inc()
            continue
        latest.store(camera, seq, captured_ns, jpeg)
        client.set(RECEIVED_KEY.format(camera=camera), f"{seq} {time.time_ns()}")


# --- started by the bench -----------------------------------------------------------------------


def start(
    services: Services,
    transport: str,
    size: tuple[int, int],
    fps: float,
    redis_url: str,
    camera: str = "cam0",
) -> tuple[Service, Service]:
    """Start the article's receiver, then its sender; (receiver, sender) once /metrics answer."""
    command = [sys.executable, "-m", "framewire.bench.article"]
    receiver_port, sender_port = free_port(), free_port()
    source = ["--camera", camera, "--width", str(size[0]), "--height", str(size[1])]
    source += ["--fps", f"{fps:g}", "--metrics-port", str(sender_port)]
    if transport == "http":
        receiver_args = ["http-receiver", "--port", str(receiver_port)]
        sender_args = ["http-sender", "--url", f"http://127.0.0.1:{receiver_port}/frames"]
    else:
        receiver_args = ["redis-receiver", "--redis-url", redis_url, "--camera", camera]
        receiver_args += ["--metrics-port", str(receiver_port)]
        sender_args = ["redis-sender", "--redis-url", redis_url]
    url = f"http://127.0.0.1:{receiver_port}"
    name = f"article-{transport}-receiver-{receiver_port}"
    receiver = services.start(name, [*command, *receiver_args], url=url).wait_ready("/metrics")
    url = f"http://127.0.0.1:{sender_port}"
    name = f"article-{transport}-sender-{sender_port}"
    sender = services.start(name, [*command, *sender_args, *source], url=url)
    return receiver, sender.wait_ready("/metrics")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m framewire.bench.article")
    sides = parser.add_subparsers(dest="side", required=True)
    for name in ("http-sender", "redis-sender"):
        side = sides.add_parser(name)
        side.add_argument("--camera", default="cam0")
        side.add_argument("--width", type=int, default=1280)
        side.add_argument("--height", type=int, default=720)
        side.add_argument("--fps", type=float, default=30.0, help="0: unthrottled")
        side.add_argument("--metrics-port", type=int, required=True)
        if name == "http-sender":
            side.add_argument("--url", required=True, help="the receiver's /frames")
        else:
            side.add_argument("--redis-url", required=True)
    http = sides.add_parser("http-receiver")
    http.add_argument("--port", type=int, required=True)
    red = sides.add_parser("redis-receiver")
    red.add_argument("--redis-url", required=True)
    red.add_argument("--camera", default="cam0")
    red.add_argument("--metrics-port", type=int, required=True)
    return parser.parse_args(argv)


SIDES: dict[str, Callable[[argparse.Namespace], None]] = {
    "http-sender": http_sender,
    "http-receiver": http_receiver,
    "redis-sender": redis_sender,
    "redis-receiver": redis_receiver,
}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    SIDES[args.side](args)


if __name__ == "__main__":
    main()
