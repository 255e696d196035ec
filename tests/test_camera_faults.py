"""Camera lost (SIGKILL) and frozen (SIGSTOP) with a real GStreamer RTSP server."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from conftest import TESTS, Service, Services, free_port, scrape, wait_until

SYSTEM_PYTHON = "/usr/bin/python3"
READ_TIMEOUT = 2.0


class RtspCamera:
    """tests/rtsp_camera.py under the system Python, restartable on the same port."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self._log_dir = log_dir
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(TESTS / "rtsp_camera.py"), str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", (
            f"RTSP camera did not start: {line}{self.proc.stdout.read()}"
        )

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        if self.proc:
            self.proc.wait()


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[RtspCamera]:
    probe = subprocess.run(
        [
            SYSTEM_PYTHON,
            "-c",
            "import gi; gi.require_version('GstRtspServer', "
            "'1.0'); from gi.repository import GstRtspServer",
        ],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.fail("GStreamer's RTSP server is missing: run `make test`, which installs it")
    cam = RtspCamera(tmp_path)
    cam.start()
    yield cam
    cam.stop()


def snapshot_status(url: str) -> int:
    return requests.get(f"{url}/snapshot.jpg", timeout=5).status_code


def start(services: Services, camera: RtspCamera) -> tuple[Service, Service]:
    receiver = services.receiver("http", "--stale-after", "1")
    sender = services.sender(
        "--source",
        camera.url,
        "--read-timeout",
        str(READ_TIMEOUT),
        "--open-timeout",
        "3",
        "--http-url",
        f"{receiver.url}/frames",
        "--redis-url",
        "",
    )
    wait_until(lambda: snapshot_status(receiver.url) == 200, timeout=20, what="camera frames")
    assert scrape(sender.url, "framewire_source_up", camera="cam0") == 1
    return receiver, sender


def source_up(sender: Service) -> float:
    return scrape(sender.url, "framewire_source_up", camera="cam0")


def assert_no_signal(receiver: Service) -> None:
    wait_until(lambda: snapshot_status(receiver.url) == 503, timeout=5, what="no-signal picture")
    ready = requests.get(f"{receiver.url}/readyz", timeout=5)
    assert ready.status_code == 503 and ready.json()["ready"] is False


def assert_recovers(receiver: Service, sender: Service, restarted: float) -> float:
    wait_until(
        lambda: snapshot_status(receiver.url) == 200,
        timeout=10,
        what="frames within 10 s of the camera's return",
    )
    took = time.monotonic() - restarted
    assert source_up(sender) == 1
    assert requests.get(f"{receiver.url}/readyz", timeout=5).status_code == 200
    return took


def test_camera_killed_then_back(services: Services, camera: RtspCamera) -> None:
    receiver, sender = start(services, camera)
    reconnects = scrape(sender.url, "framewire_source_reconnects_total", camera="cam0")
    camera.signal(signal.SIGKILL)
    killed = time.monotonic()
    wait_until(
        lambda: source_up(sender) == 0,
        timeout=2.0,
        interval=0.02,
        what="source down within 2 s of the camera dying",
    )
    print(f"camera kill detected in {time.monotonic() - killed:.2f} s")
    assert_no_signal(receiver)
    wait_until(
        lambda: scrape(sender.url, "framewire_source_reconnects_total", camera="cam0") > reconnects,
        what="reconnect attempts",
    )
    camera.stop()
    camera.start()
    took = assert_recovers(receiver, sender, time.monotonic())
    print(f"frames again {took:.2f} s after the camera came back")
    assert sender.proc.poll() is None and receiver.proc.poll() is None
    assert sender.log().count("source down") == 1


def test_camera_frozen_then_thawed(services: Services, camera: RtspCamera) -> None:
    receiver, sender = start(services, camera)
    camera.signal(signal.SIGSTOP)
    frozen = time.monotonic()
    wait_until(
        lambda: source_up(sender) == 0,
        timeout=READ_TIMEOUT + 1.5,
        interval=0.02,
        what="frozen camera detected within the read timeout plus a margin",
    )
    print(f"camera freeze detected in {time.monotonic() - frozen:.2f} s")
    assert_no_signal(receiver)
    camera.signal(signal.SIGCONT)
    took = assert_recovers(receiver, sender, time.monotonic())
    print(f"frames again {took:.2f} s after the camera thawed")
    assert scrape(sender.url, "framewire_source_reconnects_total", camera="cam0") >= 1
