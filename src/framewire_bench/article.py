"""The article's whole design, rebuilt step by step as a baseline for `framewire bench`.

framewire grew out of an article that passed camera frames between Python
processes. Its `form-base64` and `set-publish` modes copy only the article's
wire format onto framewire's pipeline; this module copies the design too, so
`article-http` and `article-redis` measure what the article actually built:

- sender: a capture thread reads the source and puts each raw frame on a
  `queue.LifoQueue`, then trims it with `while q.qsize() > 3: q.get()` (on a
  LIFO `get` takes the newest, so once 3 wait the frame just put is the one
  thrown away); the sending loop sleeps 10 ms at the top of every iteration,
  a frame waiting or not, takes one and JPEG-encodes only that one;
- HTTP: `requests.post(url, data=form)`, a new connection per frame, base64
  JPEG in a form field, to a Flask development server (`app.run`, threaded);
  the route decodes base64 and the JPEG, resizes it to 600x600 and sleeps
  10 ms before it answers; the sender waits for the answer;
- Redis: every iteration `GET`s the `result` key first (`stop` there ends the
  loop); per frame `DEL` the receive-time key, `SET` the frame (JSON with the
  base64 JPEG), `PUBLISH` the key's name, then `GET` the receive-time key,
  sleeping 10 ms between tries, until the receiver has set it; the receiver
  subscribes, `GET`s the frame, decodes it, `SET`s the receive time, then
  resizes to 600x600;
- receiver: a display loop polls the latest (resized) frame every 10 ms and
  "shows" it (the article opened a desktop window; here it just takes it).

Not the article's, so the bench reads it like framewire: framewire's metric
names (the trim counts as `capture` drops) and `/latencies` (each frame's own
latency: `received` capture to decoded, `served` capture to displayed), and
`/frame.jpg`, what the window would show; JPEG quality 80 by default, like
framewire's (`framewire bench --article-quality 95`: cv2's, the article's);
the Redis sender gives up on the receive time after `WAIT_TIMEOUT`, counted.

Run one side: `python -m framewire_bench.article {http,redis}-{sender,receiver} ...`.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import logging
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
from flask import Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server
from werkzeug.serving import make_server

from framewire.figures import LATENCY_STAGES
from framewire.metrics import LatencyLog, ReceiverMetrics, SenderMetrics
from framewire.ops import latencies_answer
from framewire.sources import SyntheticSource
from framewire_bench.stack import Service, Services, free_port

log = logging.getLogger("framewire_bench.article")

POLL = 0.01  # the article's time.sleep(0.01): every send loop, every poll, the HTTP route
KEEP = 3  # the capture thread's trim: while q.qsize() > 3: q.get()
SHOWN = (600, 600)  # the receivers' cv2.resize
WAIT_TIMEOUT = 1.0  # not the article's: the Redis sender's wait for the receive time
FRAME_KEY = "article:frame:{camera}"
NOTIFY_CHANNEL = "article:notify:{camera}"
RECEIVED_KEY = "article:received:{camera}"
RESULT_KEY = "article:result:{camera}"  # the Redis sender's stop signal
STOP = b"stop"
SEND_ERRORS = (requests.RequestException, redis.RedisError)


@dataclass(frozen=True)
class Raw:
    """One captured frame as the capture thread queues it, not encoded."""

    seq: int
    captured_ns: int
    image: np.ndarray


class ReceiveTimeout(Exception):
    """The Redis receiver set no receive time within WAIT_TIMEOUT."""


# --- the sending side ---------------------------------------------------------------------------


class Capture(threading.Thread):
    """Reads the source, pushes each raw frame on a LIFO queue and trims it to 3."""

    def __init__(
        self, args: argparse.Namespace, metrics: SenderMetrics, frames: queue.LifoQueue[Raw]
    ) -> None:
        super().__init__(daemon=True, name="article-capture")
        self.source = SyntheticSource(args.width, args.height, args.fps)
        self.camera, self.metrics, self.frames = args.camera, metrics, frames

    def run(self) -> None:
        drops = self.metrics.frames_dropped.labels(self.camera, "none", "capture")
        self.source.open()
        for seq in itertools.count():
            image = self.source.read()
            self.frames.put(Raw(seq, time.time_ns(), image))
            self.metrics.frames_captured.labels(self.camera).inc()
            while self.frames.qsize() > KEEP:  # the article's trim, literally
                self.frames.get()
                drops.inc()


def send_loop(
    frames: queue.LifoQueue[Raw],
    send: Callable[[Raw, bytes], None],
    args: argparse.Namespace,
    metrics: SenderMetrics,
    transport: str,
    stopped: Callable[[], bool] = lambda: False,
) -> None:
    """Sleep 10 ms, check `stopped`, take a frame if one waits, encode it and send it; again."""
    camera, params = args.camera, [cv2.IMWRITE_JPEG_QUALITY, args.quality]
    failing = False
    while True:
        time.sleep(POLL)  # the article's: at the top of every iteration
        try:
            if stopped():
                log.info("%s sender: stop signal, the loop ends", transport)
                return
            frame = frames.get_nowait()
            started = time.perf_counter()
            _, buffer = cv2.imencode(".jpg", frame.image, params)  # only the frame taken
            metrics.encode_seconds.labels(camera).observe(time.perf_counter() - started)
            metrics.frame_bytes.labels(camera).observe(buffer.size)
            send(frame, buffer.tobytes())
        except queue.Empty:
            continue
        except (*SEND_ERRORS, ReceiveTimeout) as exc:
            metrics.send_errors.labels(camera, transport, type(exc).__name__).inc()
            if not failing:
                log.warning("%s sender: sends fail (%s), counted", transport, type(exc).__name__)
            failing = True
            continue
        if failing:
            log.info("%s sender: sends succeed again", transport)
            failing = False
        metrics.frames_sent.labels(camera, transport).inc()


def http_sender(args: argparse.Namespace) -> None:
    """POST each frame as a base64 form field, a new connection every time; wait for the answer."""

    def send(frame: Raw, jpeg: bytes) -> None:
        form = {
            "camera": args.camera,
            "seq": str(frame.seq),
            "captured_ns": str(frame.captured_ns),
            "image": base64.b64encode(jpeg).decode("ascii"),
        }
        requests.post(args.url, data=form, timeout=10).raise_for_status()  # no Session

    run_sender(args, "http", send)


def redis_sender(args: argparse.Namespace) -> None:
    """GET result; DEL the receive time, SET the frame, PUBLISH, GET the receive time until set."""
    client = redis.Redis.from_url(args.redis_url, protocol=2)
    key, channel = FRAME_KEY.format(camera=args.camera), NOTIFY_CHANNEL.format(camera=args.camera)
    received, result = (name.format(camera=args.camera) for name in (RECEIVED_KEY, RESULT_KEY))

    def send(frame: Raw, jpeg: bytes) -> None:
        value = {
            "camera": args.camera,
            "seq": frame.seq,
            "captured_ns": frame.captured_ns,
            "image": base64.b64encode(jpeg).decode("ascii"),
        }
        client.delete(received)
        client.set(key, json.dumps(value))
        client.publish(channel, key)
        deadline = time.monotonic() + WAIT_TIMEOUT
        while client.get(received) is None:  # until the receiver has handled the frame
            if time.monotonic() >= deadline:
                raise ReceiveTimeout
            time.sleep(POLL)

    run_sender(args, "redis", send, stopped=lambda: client.get(result) == STOP)


def run_sender(
    args: argparse.Namespace,
    transport: str,
    send: Callable[[Raw, bytes], None],
    stopped: Callable[[], bool] = lambda: False,
) -> None:
    metrics = SenderMetrics()
    start_http_server(args.metrics_port, addr="127.0.0.1", registry=metrics.registry)
    frames: queue.LifoQueue[Raw] = queue.LifoQueue()
    Capture(args, metrics, frames).start()
    send_loop(frames, send, args, metrics, transport, stopped)


# --- the receiving side -------------------------------------------------------------------------


class Latest:
    """The newest shown frame, each frame's latency (for /latencies) and the metrics."""

    def __init__(self, transport: str, camera: str) -> None:
        self.transport, self.camera = transport, camera
        self.metrics = ReceiverMetrics()
        self.logs: dict[str, dict[str, LatencyLog]] = {}
        self.lock = threading.Lock()
        self.frame: tuple[str, int, int, np.ndarray] | None = None
        self.latency_logs(camera)

    def latency_logs(self, camera: str) -> dict[str, LatencyLog]:
        return self.logs.setdefault(camera, {stage: LatencyLog() for stage in LATENCY_STAGES})

    def decode(self, camera: str, captured_ns: int, jpeg: bytes) -> np.ndarray | None:
        """The decoded JPEG, counted; None (rejected) when it does not decode."""
        started = time.perf_counter()
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            self.metrics.frames_rejected.labels(self.transport, "undecodable").inc()
            return None
        m, labels = self.metrics, (camera, self.transport)
        m.decode_seconds.labels(*labels).observe(time.perf_counter() - started)
        m.frames_received.labels(*labels).inc()
        m.frame_bytes.labels(*labels).observe(len(jpeg))
        latency = (time.time_ns() - captured_ns) / 1e9
        m.frame_latency.labels(*labels, "received").observe(latency)
        self.latency_logs(camera)["received"].add(captured_ns, latency)
        return image

    def show(self, camera: str, seq: int, captured_ns: int, image: np.ndarray) -> None:
        """Resize to 600x600, as the article did before showing it, and keep it as the latest."""
        shown = cv2.resize(image, SHOWN)
        with self.lock:
            self.frame = (camera, seq, captured_ns, shown)

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
            self.latency_logs(camera)["served"].add(captured_ns, latency)

    def start_display(self) -> None:
        threading.Thread(target=self.display_loop, daemon=True, name="article-display").start()


def bench_app(latest: Latest) -> Flask:
    """What the bench reads: /metrics, framewire's /latencies and /frame.jpg (the window)."""
    app = Flask("article")

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(latest.metrics.registry), content_type=CONTENT_TYPE_LATEST)

    @app.get("/latencies")
    def latencies() -> Response | tuple[Response, int]:
        camera = request.args.get("camera") or latest.camera
        if camera not in latest.logs:
            return jsonify(error="unknown_camera", detail=f"no camera {camera}"), 404
        return latencies_answer(latest.logs[camera], camera, latest.transport)

    @app.get("/frame.jpg")
    def frame() -> Response | tuple[str, int]:
        with latest.lock:
            shown = latest.frame
        if shown is None:
            return "no frame yet", 404
        return Response(cv2.imencode(".jpg", shown[3])[1].tobytes(), mimetype="image/jpeg")

    return app


def http_receiver(args: argparse.Namespace) -> None:
    """The article's Flask app on its development server, plus what the bench reads."""
    latest = Latest("http", args.camera)
    latest.start_display()
    app = bench_app(latest)

    @app.post("/frames")
    def frames() -> tuple[str, int]:
        form = request.form
        try:
            camera, seq, captured_ns = form["camera"], int(form["seq"]), int(form["captured_ns"])
            jpeg = base64.b64decode(form["image"], validate=True)
        except (KeyError, ValueError):
            latest.metrics.frames_rejected.labels("http", "bad_form").inc()
            return "bad form", 400
        image = latest.decode(camera, captured_ns, jpeg)
        if image is None:
            return "undecodable", 422
        latest.show(camera, seq, captured_ns, image)
        time.sleep(POLL)  # the article's, before it answers
        return "ok", 200

    app.run(host="127.0.0.1", port=args.port)  # the development server, threaded


def redis_receiver(args: argparse.Namespace) -> None:
    """Subscribe; on each message GET the frame, decode, SET the receive time, resize."""
    latest = Latest("redis", args.camera)
    server = make_server("127.0.0.1", args.metrics_port, bench_app(latest), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True, name="article-bench").start()
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
        image = latest.decode(camera, captured_ns, jpeg)
        if image is None:
            continue
        client.set(RECEIVED_KEY.format(camera=camera), f"{seq} {time.time_ns()}")
        latest.show(camera, seq, captured_ns, image)


# --- started by the bench -----------------------------------------------------------------------


def start(
    services: Services,
    transport: str,
    size: tuple[int, int],
    fps: float,
    redis_url: str,
    camera: str,
    quality: int,
) -> tuple[Service, Service]:
    """Start the article's receiver, then its sender; (receiver, sender) once /metrics answer."""
    command = [sys.executable, "-m", "framewire_bench.article"]
    receiver_port, sender_port = free_port(), free_port()
    source = ["--camera", camera, "--width", str(size[0]), "--height", str(size[1])]
    source += ["--fps", f"{fps:g}", "--quality", str(quality), "--metrics-port", str(sender_port)]
    if transport == "http":
        receiver_args = ["http-receiver", "--port", str(receiver_port), "--camera", camera]
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
    parser = argparse.ArgumentParser(prog="python -m framewire_bench.article")
    sides = parser.add_subparsers(dest="side", required=True)
    for name in ("http-sender", "redis-sender"):
        side = sides.add_parser(name)
        side.add_argument("--camera", default="cam0")
        side.add_argument("--width", type=int, default=1280)
        side.add_argument("--height", type=int, default=720)
        side.add_argument("--fps", type=float, default=30.0, help="0: unthrottled")
        side.add_argument("--quality", type=int, required=True, help="JPEG quality (cv2: 95)")
        side.add_argument("--metrics-port", type=int, required=True)
        if name == "http-sender":
            side.add_argument("--url", required=True, help="the receiver's /frames")
        else:
            side.add_argument("--redis-url", required=True)
    http = sides.add_parser("http-receiver")
    http.add_argument("--port", type=int, required=True)
    http.add_argument("--camera", default="cam0", help="the camera /latencies answers for")
    red = sides.add_parser("redis-receiver")
    red.add_argument("--redis-url", required=True)
    red.add_argument("--camera", default="cam0")
    red.add_argument("--metrics-port", type=int, required=True)
    return parser.parse_args(argv)


SIDES = {"http-sender": http_sender, "http-receiver": http_receiver}
SIDES |= {"redis-sender": redis_sender, "redis-receiver": redis_receiver}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    SIDES[args.side](args)


if __name__ == "__main__":
    main()
