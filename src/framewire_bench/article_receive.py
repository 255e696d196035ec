"""The article's receiving side (article.py says what it copies): the Flask route, the
subscriber, and the display loop."""

from __future__ import annotations

import argparse
import base64
import json
import logging
import threading
import time

import cv2
import numpy as np
import redis
from flask import Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.serving import make_server

from framewire.figures import LATENCY_STAGES
from framewire.metrics import LatencyLog, ReceiverMetrics
from framewire.ops import latencies_answer
from framewire_bench.article import (
    NOTIFY_CHANNEL,
    POLL,
    RECEIVED_KEY,
    SHOWN,
)

log = logging.getLogger("framewire_bench.article")

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
