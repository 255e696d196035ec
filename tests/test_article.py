"""The article's design (framewire.bench.article): both sides speak its protocol, for real."""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import cv2
import numpy as np
import pytest
import requests

from conftest import RedisServer, Services, free_port, scrape, wait_until
from framewire.bench import article
from framewire.bench.readers import read_metrics, total

SIZE = (160, 120)


class FormServer(ThreadingHTTPServer):
    """A keep-alive HTTP/1.1 server that records every POST and the connection it came on."""

    daemon_threads = True

    def __init__(self) -> None:
        self.connections = 0
        self.posts: list[tuple[int, str, dict[str, list[str]]]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # a client that wanted to could reuse the connection

            def setup(self) -> None:
                super().setup()
                with server.lock:
                    server.connections += 1
                    self.connection_id = server.connections

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                with server.lock:
                    server.posts.append(
                        (self.connection_id, self.headers["Content-Type"], parse_qs(body))
                    )
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def form_server() -> Iterator[FormServer]:
    server = FormServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_http_sender_posts_base64_forms_on_a_new_connection_each(
    services: Services, form_server: FormServer
) -> None:
    metrics_port = free_port()
    command = [sys.executable, "-m", "framewire.bench.article", "http-sender"]
    command += ["--url", f"http://127.0.0.1:{form_server.server_address[1]}/frames"]
    command += ["--width", str(SIZE[0]), "--height", str(SIZE[1]), "--fps", "30"]
    command += ["--camera", "door", "--metrics-port", str(metrics_port)]
    sender = services.start("article-http-sender", command, url=f"http://127.0.0.1:{metrics_port}")
    wait_until(lambda: len(form_server.posts) >= 8 or sender.check(), what="8 posts")

    posts = list(form_server.posts)
    assert len({connection for connection, _, _ in posts}) == len(posts)  # never reused
    for _, content_type, form in posts:
        assert content_type == "application/x-www-form-urlencoded"
        assert form["camera"] == ["door"]
        assert int(form["seq"][0]) >= 0
        assert abs(int(form["captured_ns"][0]) - time.time_ns()) < 60e9
        jpeg = base64.b64decode(form["image"][0], validate=True)
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (SIZE[1], SIZE[0], 3)
    assert len({form["seq"][0] for _, _, form in posts}) == len(posts)  # each frame once
    sender.wait_ready("/metrics")
    assert scrape(sender.url, "framewire_frames_sent_total", transport="http") > 0
    assert scrape(sender.url, "framewire_frames_captured_total") > 0


def test_http_receiver_is_flasks_development_server_and_measures_frames(
    services: Services,
) -> None:
    receiver, sender = article.start(services, "http", SIZE, 30, redis_url="", camera="door")

    def received() -> bool:
        return scrape(receiver.url, "framewire_frames_received_total", transport="http") >= 5

    wait_until(received, what="5 frames at the article's HTTP receiver")
    samples = read_metrics(receiver.url)
    for stage in ("received", "served"):  # decoded, and taken by the display loop
        count = total(samples, "framewire_frame_latency_seconds_count", stage=stage, camera="door")
        assert count > 0, stage
    assert total(samples, "framewire_frame_bytes_sum", transport="http") > 0

    response = requests.post(f"{receiver.url}/frames", data={"camera": "door"}, timeout=5)
    assert response.status_code == 400
    assert response.headers["Server"].startswith("Werkzeug/")  # app.run, not gunicorn
    garbage = base64.b64encode(b"not a jpeg").decode()
    form = {"camera": "door", "seq": "1", "captured_ns": str(time.time_ns()), "image": garbage}
    assert requests.post(f"{receiver.url}/frames", data=form, timeout=5).status_code == 422
    rejected = total(read_metrics(receiver.url), "framewire_frames_rejected_total")
    assert rejected == 2  # bad_form and undecodable
    sender.check()


def monitor(server: RedisServer, publishes: int, timeout: float = 20.0) -> list[list[str]]:
    """The commands Redis ran (MONITOR) until `publishes` PUBLISHes, split into words."""
    seen: list[list[str]] = []
    deadline = time.monotonic() + timeout
    with server.client().monitor() as watch:
        while sum(c[0] == "PUBLISH" for c in seen) < publishes and time.monotonic() < deadline:
            words = watch.next_command()["command"].split(" ", 2)
            seen.append([words[0].upper(), *words[1:]])
    return seen


def test_redis_sides_set_publish_get_and_poll_the_receive_time(
    services: Services, redis_server: RedisServer
) -> None:
    receiver, sender = article.start(services, "redis", SIZE, 30, redis_server.url, "door")
    frame_key, received_key = "article:frame:door", "article:received:door"
    commands = monitor(redis_server, publishes=6)
    names = [(c[0], c[1] if len(c) > 1 else "") for c in commands]

    assert ("SET", frame_key) in names and ("GET", frame_key) in names  # sender, receiver
    assert ("SET", received_key) in names and ("GET", received_key) in names
    publishes = [i for i, c in enumerate(commands) if c[0] == "PUBLISH"]
    assert all(commands[i][1:] == ["article:notify:door", frame_key] for i in publishes)
    for before, after in itertools.pairwise(publishes):
        between = names[before:after]
        assert ("SET", received_key) in between  # the receiver handled the frame ...
        assert ("GET", received_key) in between  # ... and the sender polled until it had
        assert names[after - 1] == ("SET", frame_key)  # then the next frame: SET, PUBLISH

    value = json.loads(redis_server.client().get(frame_key))
    assert value["camera"] == "door" and isinstance(value["captured_ns"], int)
    jpeg = base64.b64decode(value["image"], validate=True)
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape[:2] == SIZE[::-1]
    assert scrape(receiver.url, "framewire_frames_received_total", transport="redis") > 0
    assert scrape(receiver.url, "framewire_frames_sent_total") == 0  # receiver's own metrics
    assert scrape(sender.url, "framewire_frames_sent_total", transport="redis") > 0


def test_sides_refuse_unknown_commands() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "framewire.bench.article", "carrier-pigeon"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "invalid choice" in done.stderr
