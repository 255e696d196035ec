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

The sides are article_send.py and article_receive.py; run one with
`python -m framewire_bench.article_sides {http,redis}-{sender,receiver} ...`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import redis
import requests

from framewire_bench.stack import Service, Services, free_port

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
    command = [sys.executable, "-m", "framewire_bench.article_sides"]
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
