"""framewire.client against the real receivers and Redis: both ways, every refusal with its
reason, unreachable servers named within their timeout, and the docs' examples run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from conftest import RedisServer, Service, Services, wait_until
from framewire.client import (
    HttpSender,
    Received,
    RedisReceiver,
    RedisSender,
    Refused,
)
from framewire.frame import Frame
from helpers import make_jpeg

TOKEN = "client-t0ken-9f3a"
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def image(width: int = 320, height: int = 240, shade: int = 90) -> np.ndarray:
    picture = np.full((height, width, 3), shade, np.uint8)
    picture[:, : width // 2] = 200  # an edge, so the JPEG is not trivially small
    return picture


def stats_camera(receiver: Service, camera: str) -> dict | None:
    return requests.get(f"{receiver.url}/stats", timeout=5).json()["cameras"].get(camera)


def latencies(receiver: Service, camera: str) -> list[float]:
    params = {"camera": camera, "stage": "received"}
    response = requests.get(f"{receiver.url}/latencies", params=params, timeout=5)
    return response.json()["seconds"] if response.ok else []


def test_http_sender_delivers_images_and_jpeg_bytes(services: Services) -> None:
    receiver = services.receiver("http", "--token", TOKEN)
    sender = HttpSender(f"{receiver.url}/frames", TOKEN, camera="client-http")
    sent = [sender.send(image()), sender.send(make_jpeg()), sender.send(image(), "other")]
    assert [(f.camera, f.seq) for f in sent] == [
        ("client-http", 1),
        ("client-http", 2),
        ("other", 1),
    ]
    wait_until(lambda: (stats_camera(receiver, "client-http") or {}).get("seq") == 2, what="seq 2")
    seconds = latencies(receiver, "client-http")
    assert len(seconds) == 2 and all(0 < s < 5 for s in seconds), seconds
    assert stats_camera(receiver, "other") is not None
    sender.close()


def test_redis_sender_to_the_receiver_and_back_to_python(
    services: Services, redis_server: RedisServer
) -> None:
    receiver = services.receiver("redis", "--redis-url", redis_server.url)
    with RedisReceiver(redis_server.url, ["client-redis"], timeout=2) as frames:
        sender = RedisSender(redis_server.url, camera="client-redis")
        captured_ns = time.time_ns()
        sender.send(image(shade=30), seq=41, captured_ns=captured_ns)
        got = frames.get(timeout=10)
        assert isinstance(got, Received)
        assert (got.camera, got.seq, got.frame.captured_ns) == ("client-redis", 41, captured_ns)
        assert got.image.shape == (240, 320, 3) and abs(int(got.image[0, -1, 0]) - 30) < 8
        assert 0 < got.latency_seconds < 5
        # Another camera is not followed; this camera's later frames still arrive.
        sender.send(image(), "elsewhere")
        sender.send(image())
        assert frames.get(timeout=10).seq == 42
        assert frames.get(timeout=0.5) is None
        # The framewire receiver follows a new stream from its newest entry: feed it until it shows.
        wait_until(
            lambda: sender.send(image()) and stats_camera(receiver, "client-redis") is not None,
            what="the camera at the Redis receiver",
        )
    first = stats_camera(receiver, "client-redis")["seq"]
    sender.send(image())
    wait_until(lambda: stats_camera(receiver, "client-redis")["seq"] > first, what="seq advancing")
    assert latencies(receiver, "client-redis") and all(
        0 < s < 5 for s in latencies(receiver, "client-redis")
    )


def test_the_receiver_keeps_only_the_newest_frame(redis_server: RedisServer) -> None:
    """Latest frame wins: five frames sent while nobody asks, the newest one is returned."""
    with RedisReceiver(redis_server.url, ["burst"]) as frames:
        sender = RedisSender(redis_server.url, camera="burst")
        sender.send(image())
        assert frames.get(timeout=10).seq == 1
        for _ in range(5):
            sender.send(image())
        wait_until(
            lambda: frames._newest.get("burst") is not None and frames._newest["burst"].seq == 6,
            what="frame 6",
        )
        assert frames.get(timeout=1).seq == 6
        assert frames.skipped >= 4


@pytest.mark.parametrize(
    ("case", "status", "error"),
    [
        ("token", 401, "unauthorized"),
        ("large", 413, "too_large"),
        ("pixels", 422, "too_many_pixels"),
        ("not_jpeg", 422, "not_jpeg"),
    ],
)
def test_a_refused_frame_raises_with_the_receivers_reason(
    services: Services, case: str, status: int, error: str
) -> None:
    receiver = services.receiver(
        "http", "--token", TOKEN, "--max-body", "60000", "--max-pixels", "200000"
    )
    token = "wrong-" + TOKEN if case == "token" else TOKEN
    sender = HttpSender(f"{receiver.url}/frames", token, camera="refused")
    payload: object = {
        "token": make_jpeg(),
        "large": make_jpeg(1280, 720, quality=95),
        "pixels": make_jpeg(640, 480, quality=30),
        "not_jpeg": Frame("refused", 1, time.time_ns(), b"GIF89a, not a JPEG"),
    }[case]
    with pytest.raises(Refused) as refused:
        sender.send(payload)
    assert (refused.value.status, refused.value.error) == (status, error)
    assert refused.value.reason == f"http_{status}" and refused.value.detail
    assert error in str(refused.value) and TOKEN not in str(refused.value)


def run_example(name: str, *args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_docs_examples_feed_a_loop_and_run_an_algorithm(
    services: Services, redis_server: RedisServer
) -> None:
    http = services.receiver("http", "--token", TOKEN)
    env = {
        "FRAMEWIRE_HTTP_URL": f"{http.url}/frames",
        "FRAMEWIRE_REDIS_URL": redis_server.url,
        "FRAMEWIRE_TOKEN": TOKEN,
    }
    algorithm = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "run_algorithm.py"), "3", "my-loop"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    try:
        # The receiver follows my-loop from its newest entry on: keep feeding until it has 3.
        while algorithm.poll() is None:
            run_example("send_from_loop.py", "5", env=env)
        out, err = algorithm.communicate(timeout=30)
    finally:
        algorithm.kill()
    assert algorithm.returncode == 0, err
    lines = [line for line in out.splitlines() if line.startswith("my-loop seq")]
    assert len(lines) == 3 and all("edges" in line and "ms after capture" in line for line in lines)
    assert (stats_camera(http, "my-loop") or {}).get("seq", 0) >= 5
