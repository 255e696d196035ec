"""The article's sending side (article.py says what it copies): capture, trim, the send loops."""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import logging
import queue
import threading
import time
from collections.abc import Callable

import cv2
import redis
import requests
from prometheus_client import start_http_server

from framewire.metrics import SenderMetrics
from framewire.sources import SyntheticSource
from framewire_bench.article import (
    FRAME_KEY,
    KEEP,
    NOTIFY_CHANNEL,
    POLL,
    RECEIVED_KEY,
    RESULT_KEY,
    SEND_ERRORS,
    STOP,
    WAIT_TIMEOUT,
    Raw,
    ReceiveTimeout,
)

log = logging.getLogger("framewire_bench.article")

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
