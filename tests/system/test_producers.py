"""Producers in other languages against the real receivers: the wire contract, held by programs.

examples/node-producer (Node.js: fetch and node-redis, installed with `npm ci` from its lock
file) sends to both transports; examples/java-producer (the JDK's HttpClient) to HTTP. Each
is built by its make target (cached: `npm ci` and `javac` run again only when their inputs
change), then run on JPEG files written here. The receivers must show the camera, its
sequence numbers advancing to the last frame sent, and each frame's latency; a wrong token
must be refused with its reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from conftest import TESTS, RedisServer, Service, Services, wait_until
from framewire.transports import redis as redis_wire
from framewire_bench.readers import read_latencies
from helpers import make_jpeg

ROOT = TESTS.parent
NODE_PRODUCER = ROOT / "examples" / "node-producer"
JAVA_PRODUCER = ROOT / "examples" / "java-producer"
TOKEN = "producer-test-token"
FPS = "30"
COUNT = 60  # frames per run: 2 s at 30 fps
# The Redis receiver finds a new stream within 2 s (a SCAN every 2 s) and follows it from
# then on: 4 s of frames leave it 2 s or more to see them advance.
REDIS_COUNT = 120

Producer = Callable[..., list[str]]


def make(target: str) -> None:
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT), target], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"make {target} failed:\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="session")
def node_producer() -> list[str]:
    """`node producer.mjs`, its packages installed from the lock file (`npm ci`, once)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "the producer tests need Node.js and npm (`make test` installs them)"
    make("node-producer-deps")
    return [node, str(NODE_PRODUCER / "producer.mjs")]


@pytest.fixture(scope="session")
def java_producer() -> list[str]:
    """`java FramewireProducer`, compiled with javac (again only when its source changes)."""
    java, javac = shutil.which("java"), shutil.which("javac")
    assert java and javac, "the producer tests need a JDK (Debian: default-jdk-headless)"
    make("java-producer-build")
    return [java, "-cp", str(JAVA_PRODUCER / "build"), "FramewireProducer"]


@pytest.fixture
def jpegs(tmp_path: Path) -> Path:
    """A directory of three real JPEGs (the producers cycle through them)."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for seed in range(3):
        (folder / f"frame{seed}.jpg").write_bytes(make_jpeg(320, 240, seed=seed))
    return folder


def camera_seq(receiver: Service, camera: str) -> int | None:
    """The sequence number of `camera`'s newest frame at `receiver` (/stats), None if unknown."""
    response = requests.get(f"{receiver.url}/stats", timeout=5)
    response.raise_for_status()
    return response.json()["cameras"].get(camera, {}).get("seq")


def frames(token: str, camera: str, fps: str, count: int, jpegs: Path) -> list[str]:
    """The options both producers share: who they are, how fast, how many, which files."""
    return ["--token", token, "--camera", camera, "--fps", fps, "--count", str(count), str(jpegs)]


def run_producer(
    command: list[str], receivers: list[Service], camera: str, count: int
) -> tuple[dict, dict[str, list[int]]]:
    """Run a producer to its end while watching `camera` at each receiver.

    Returns the producer's summary (its last stdout line) and the sequence numbers each
    receiver showed, in the order seen, until it showed the last frame (`count`).
    """
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[str, list[int]] = {r.name: [] for r in receivers}

    def all_at_last_frame() -> bool:
        if proc.poll() not in (None, 0):
            out, err = proc.communicate()
            pytest.fail(f"producer exited with {proc.returncode}:\n{out}{err}")
        for receiver in receivers:
            seq = camera_seq(receiver, camera)
            if seq is not None and seq not in seen[receiver.name][-1:]:
                seen[receiver.name].append(seq)
        return all(seen[r.name][-1:] == [count] for r in receivers)

    try:
        wait_until(all_at_last_frame, timeout=30, interval=0.02, what=f"{camera}'s frame {count}")
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, f"producer exited with {proc.returncode}:\n{out}{err}"
    return json.loads(out.strip().splitlines()[-1]), seen


def check_received(
    receiver: Service, camera: str, seen: list[int], started_ns: int, ended_ns: int
) -> list[float]:
    """Sequence numbers advanced to the last frame; every frame's latency was recorded."""
    assert len(seen) >= 2, f"{receiver.name} showed only {seen}: no advance"
    assert seen == sorted(set(seen)), f"{receiver.name}: sequence numbers went back: {seen}"
    latencies = read_latencies(receiver.url, "received", camera)
    seconds, captured = latencies["seconds"], latencies["captured_ns"]
    assert seconds, f"{receiver.name} recorded no latency for {camera}"
    assert all(0 < s < 5 for s in seconds), f"implausible latencies: {seconds}"
    # Capture times are nanoseconds since the epoch, taken while the producer ran.
    assert all(started_ns <= ns <= ended_ns for ns in captured), (started_ns, captured, ended_ns)
    return seconds


def test_node_producer_feeds_both_receivers(
    services: Services, redis_server: RedisServer, node_producer: list[str], jpegs: Path
) -> None:
    http = services.receiver("http", "--token", TOKEN)
    red = services.receiver("redis", "--redis-url", redis_server.url)
    camera = "node-cam"
    started_ns = time.time_ns()
    summary, seen = run_producer(
        [
            *node_producer,
            "--http-url",
            f"{http.url}/frames",
            "--redis-url",
            redis_server.url,
            *frames(TOKEN, camera, FPS, REDIS_COUNT, jpegs),
        ],
        [http, red],
        camera,
        REDIS_COUNT,
    )
    ended_ns = time.time_ns()

    assert summary["camera"] == camera
    for transport in ("http", "redis"):
        counts = summary[transport]
        assert counts["errors"] == 0, summary
        assert counts["sent"] + counts["dropped"] == REDIS_COUNT, summary
    http_seconds = check_received(http, camera, seen[http.name], started_ns, ended_ns)
    # HTTP: every frame the producer delivered was accepted, and is in /latencies.
    assert len(http_seconds) == summary["http"]["sent"]
    # Redis: the receiver follows a stream from when it found it (a SCAN every 2 s).
    redis_seconds = check_received(red, camera, seen[red.name], started_ns, ended_ns)
    assert len(redis_seconds) <= summary["redis"]["sent"]
    # The stream holds raw bytes (no base64), trimmed to about 8 entries.
    entries = redis_server.client().xrevrange(redis_wire.key("stream", camera), count=1)
    assert entries[0][1][b"seq"] == str(REDIS_COUNT).encode()
    assert entries[0][1][b"jpeg"] == (jpegs / f"frame{(REDIS_COUNT - 1) % 3}.jpg").read_bytes()
    assert redis_server.client().xlen(redis_wire.key("stream", camera)) < REDIS_COUNT


def test_java_producer_feeds_the_http_receiver(
    services: Services, java_producer: list[str], jpegs: Path
) -> None:
    http = services.receiver("http", "--token", TOKEN)
    camera = "java-cam"
    started_ns = time.time_ns()
    summary, seen = run_producer(
        [
            *java_producer,
            f"--http-url={http.url}/frames",
            *frames(TOKEN, camera, FPS, COUNT, jpegs),
        ],
        [http],
        camera,
        COUNT,
    )
    ended_ns = time.time_ns()

    assert summary["camera"] == camera
    assert summary["http"]["errors"] == 0, summary
    assert summary["http"]["sent"] + summary["http"]["dropped"] == COUNT, summary
    seconds = check_received(http, camera, seen[http.name], started_ns, ended_ns)
    assert len(seconds) == summary["http"]["sent"]


@pytest.mark.parametrize("language", ["node", "java"])
def test_a_wrong_token_is_refused_with_its_reason(
    services: Services, request: pytest.FixtureRequest, jpegs: Path, language: str
) -> None:
    producer: list[str] = request.getfixturevalue(f"{language}_producer")
    http = services.receiver("http", "--token", TOKEN)
    wrong = "not-the-token"
    command = [*producer, "--http-url", f"{http.url}/frames"]
    if language == "node":
        command += ["--redis-url", ""]  # HTTP only
    command += frames(wrong, "intruder", "0", 5, jpegs)
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)

    assert result.returncode == 1, result
    assert "401 unauthorized" in result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["refused"] == {"status": 401, "reason": "unauthorized"}
    assert summary["http"]["sent"] == 0
    assert wrong not in result.stdout + result.stderr  # a token is never printed
    assert camera_seq(http, "intruder") is None  # a refused frame creates no camera
