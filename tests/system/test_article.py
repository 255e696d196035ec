"""The article's design (framewire_bench.article), step by step, on real processes."""

from __future__ import annotations

import base64
import itertools
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests

from conftest import RedisServer, Services, free_port, scrape, wait_until
from framewire_bench import article
from framewire_bench.latency import window
from framewire_bench.readers import read_latencies, read_metrics, total
from helpers import decode

SIZE = (160, 120)
QUALITY = 80
MS = 1_000_000  # ns


class FormServer(ThreadingHTTPServer):
    """A keep-alive HTTP/1.1 server that records every POST, its connection and arrival time."""

    daemon_threads = True

    def __init__(self) -> None:
        self.connections = 0
        self.posts: list[tuple[int, str, dict[str, list[str]]]] = []
        self.arrivals: list[int] = []  # time.time_ns() of each POST, in order
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
                    server.arrivals.append(time.time_ns())
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


def sender_command(side: str, *args: str, fps: float = 0, camera: str = "door") -> list[str]:
    """`python -m framewire_bench.article_sides <side>` for SIZE frames; returns the command."""
    command = [sys.executable, "-m", "framewire_bench.article_sides", side, *args]
    command += ["--width", str(SIZE[0]), "--height", str(SIZE[1]), "--fps", f"{fps:g}"]
    return [*command, "--camera", camera, "--quality", str(QUALITY)]


def spacings(times_ns: list[int]) -> list[float]:
    """Milliseconds between consecutive times."""
    return [(b - a) / MS for a, b in itertools.pairwise(times_ns)]


def test_http_sender_sleeps_every_iteration_and_encodes_only_the_frame_it_takes(
    services: Services, form_server: FormServer
) -> None:
    metrics_port = free_port()
    url = f"http://127.0.0.1:{form_server.server_address[1]}/frames"
    command = sender_command("http-sender", "--url", url, "--metrics-port", str(metrics_port))
    sender = services.start("article-http-sender", command, url=f"http://127.0.0.1:{metrics_port}")
    wait_until(lambda: len(form_server.posts) >= 20 or sender.check(), what="20 posts")

    with form_server.lock:
        posts, arrivals = list(form_server.posts), list(form_server.arrivals)
    assert len({connection for connection, _, _ in posts}) == len(posts)  # never reused
    for _, content_type, form in posts:
        assert content_type == "application/x-www-form-urlencoded"
        assert form["camera"] == ["door"]
        assert int(form["seq"][0]) >= 0
        jpeg = base64.b64decode(form["image"][0], validate=True)
        assert decode(jpeg).shape == (SIZE[1], SIZE[0], 3)
    assert len({form["seq"][0] for _, _, form in posts}) == len(posts)  # each frame once
    # An unthrottled source always has a frame waiting, and this server answers at once:
    # only the sleep at the top of every iteration spaces the posts.
    assert min(spacings(arrivals)) >= 9, spacings(arrivals)
    # The trim `while qsize() > 3: get()` on a LIFO throws away the frame just put, so the
    # frame taken is the first one captured after the previous take: a loop's sleep old.
    ages = [
        (at - int(f["captured_ns"][0])) / MS for at, (_, _, f) in zip(arrivals, posts, strict=True)
    ]
    assert statistics.median(ages) >= 9, ages

    samples = read_metrics(sender.url)
    captured = total(samples, "framewire_frames_captured_total")
    trimmed = total(samples, "framewire_frames_dropped_total", stage="capture")
    encoded = total(samples, "framewire_encode_seconds_count")
    assert total(samples, "framewire_frames_sent_total", transport="http") >= 20
    assert captured > 5 * encoded > 0  # raw frames queued; only the one taken is encoded
    assert trimmed > 0.5 * captured  # every frame the trim threw away is counted


def test_http_receiver_paces_the_sender_resizes_and_logs_each_frame(
    services: Services,
) -> None:
    receiver, sender = article.start(services, "http", SIZE, 0, "", "door", QUALITY)

    def logged() -> dict[str, Any]:
        return read_latencies(receiver.url, "received", "door")

    wait_until(lambda: len(logged()["captured_ns"]) >= 15, what="15 frames at the receiver")
    body = logged()
    assert body["camera"] == "door" and body["transport"] == "http" and body["lost"] == 0
    # Each frame's decode time (capture + latency), in arrival order: a request reaches the
    # route at most every 20 ms (its 10 ms sleep before it answers, the sender's 10 ms
    # before the next), whatever the source's rate.
    decoded = [
        c + round(s * 1e9) for c, s in zip(body["captured_ns"], body["seconds"], strict=True)
    ]
    assert min(spacings(decoded)) >= 18, spacings(decoded)
    exact = window(body, 0, time.time_ns())
    assert exact["frames"] >= 15 and exact["method"].startswith("exact")
    served = read_latencies(receiver.url, "served", "door")
    assert served["captured_ns"] and served["next"] > 0  # the display loop took frames
    assert requests.get(f"{receiver.url}/latencies?stage=nope", timeout=5).status_code == 400

    shown = requests.get(f"{receiver.url}/frame.jpg", timeout=5)
    assert decode(shown.content).shape == (600, 600, 3)  # resized from 160x120

    response = requests.post(f"{receiver.url}/frames", data={"camera": "door"}, timeout=5)
    assert response.status_code == 400
    assert response.headers["Server"].startswith("Werkzeug/")  # app.run, not gunicorn
    garbage = base64.b64encode(b"not a jpeg").decode()
    form = {"camera": "door", "seq": "1", "captured_ns": str(time.time_ns()), "image": garbage}
    assert requests.post(f"{receiver.url}/frames", data=form, timeout=5).status_code == 422
    rejected = total(read_metrics(receiver.url), "framewire_frames_rejected_total")
    assert rejected == 2  # bad_form and undecodable
    sender.check()


def monitor(server: RedisServer, publishes: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The commands Redis ran (MONITOR) until `publishes` PUBLISHes: time, client, words."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    with server.client().monitor() as watch:
        while sum(c["words"][0] == "PUBLISH" for c in seen) < publishes:
            assert time.monotonic() < deadline, f"{len(seen)} commands, too few PUBLISHes"
            command = watch.next_command()
            words = command["command"].split(" ", 2)
            client = f"{command['client_address']}:{command['client_port']}"
            seen.append({"time": command["time"], "client": client, "words": words})
    for command in seen:
        command["words"] = [command["words"][0].upper(), *command["words"][1:2]]
    return seen


def test_redis_sides_follow_the_articles_commands_step_by_step(
    services: Services, redis_server: RedisServer
) -> None:
    receiver, sender = article.start(services, "redis", SIZE, 30, redis_server.url, "door", 80)
    frame_key, received_key = "article:frame:door", "article:received:door"
    result_key = "article:result:door"
    commands = monitor(redis_server, publishes=12)
    (sender_client,) = {c["client"] for c in commands if c["words"] == ["GET", result_key]}
    mine = [c for c in commands if c["client"] == sender_client]
    starts = [i for i, c in enumerate(mine) if c["words"] == ["GET", result_key]]
    # Iterations of the sender's loop, each starting at its GET of the stop signal.
    loops = [mine[a:b] for a, b in itertools.pairwise(starts)]
    framed = [loop for loop in loops if len(loop) > 1]
    assert framed and len(framed) < len(loops)  # a 30 fps source: some loops find no frame
    for before, loop in itertools.pairwise(loops):
        assert loop[0]["time"] - before[-1]["time"] >= 0.009  # the sleep at the top of each
    for loop in framed:
        words = [c["words"] for c in loop]
        assert words[:4] == [
            ["GET", result_key],
            ["DEL", received_key],
            ["SET", frame_key],
            ["PUBLISH", "article:notify:door"],
        ], words
        polls = loop[4:]
        assert polls and all(c["words"] == ["GET", received_key] for c in polls), words
        assert all(b["time"] - a["time"] >= 0.009 for a, b in itertools.pairwise(polls))
    assert any(len(loop) > 5 for loop in framed)  # polled more than once: the waits above

    # The receiver: on each message GET the frame, then SET the receive time once decoded,
    # and the sender's last poll of a frame is the one that found it.
    theirs = [(i, c["words"]) for i, c in enumerate(commands) if c["client"] != sender_client]
    gets = [i for i, words in theirs if words == ["GET", frame_key]]
    # A SET before the first GET monitored is of a frame GOT before MONITOR began.
    sets = [i for i, words in theirs if words == ["SET", received_key] and gets and i > gets[0]]
    assert sets and all(any(g < s for g in gets) for s in sets)
    index = {id(c): i for i, c in enumerate(commands)}
    for loop in framed[:-1]:
        published, last_poll = index[id(loop[3])], index[id(loop[-1])]
        assert any(published < s < last_poll for s in sets)

    value = json.loads(redis_server.client().get(frame_key))
    assert value["camera"] == "door" and isinstance(value["captured_ns"], int)
    jpeg = base64.b64decode(value["image"], validate=True)
    assert decode(jpeg).shape[:2] == SIZE[::-1]
    assert decode(requests.get(f"{receiver.url}/frame.jpg", timeout=5).content).shape == (
        600,
        600,
        3,
    )
    assert read_latencies(receiver.url, "received", "door")["captured_ns"]  # exact log
    assert scrape(receiver.url, "framewire_frames_received_total", transport="redis") > 0
    assert scrape(receiver.url, "framewire_frames_sent_total") == 0  # receiver's own metrics
    assert scrape(sender.url, "framewire_frames_sent_total", transport="redis") > 0

    redis_server.client().set(result_key, "stop")  # the article's stop signal
    wait_until(lambda: sender.proc.poll() is not None, what="the sender to stop")
    assert sender.proc.returncode == 0 and "stop signal" in sender.log()


def test_redis_sender_gives_up_on_a_dead_receiver_counted(
    services: Services, redis_server: RedisServer
) -> None:
    metrics_port = free_port()
    command = sender_command("redis-sender", "--redis-url", redis_server.url, fps=30)
    command += ["--metrics-port", str(metrics_port)]
    sender = services.start("article-redis-sender", command, url=f"http://127.0.0.1:{metrics_port}")
    sender.wait_ready("/metrics")

    def timeouts() -> float:
        sender.check()
        return scrape(sender.url, "framewire_send_errors_total", reason="ReceiveTimeout")

    wait_until(lambda: timeouts() >= 2, what="two receive-time timeouts")
    assert scrape(sender.url, "framewire_frames_sent_total") == 0
    assert sender.log().count("sends fail") == 1  # one line per state change


def test_sides_refuse_unknown_commands() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "framewire_bench.article_sides", "carrier-pigeon"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "invalid choice" in done.stderr
