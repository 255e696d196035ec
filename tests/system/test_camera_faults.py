"""Camera lost (SIGKILL) and frozen (SIGSTOP) with a real GStreamer RTSP server."""

from __future__ import annotations

import signal
import time

import requests

from conftest import RedisServer, RtspCamera, Service, Services, scrape, wait_until

READ_TIMEOUT = 2.0


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


def test_camera_killed_then_back(services: Services, rtsp_camera: RtspCamera) -> None:
    receiver, sender = start(services, rtsp_camera)
    reconnects = scrape(sender.url, "framewire_source_reconnects_total", camera="cam0")
    rtsp_camera.signal(signal.SIGKILL)
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
    rtsp_camera.stop()
    rtsp_camera.start()
    took = assert_recovers(receiver, sender, time.monotonic())
    print(f"frames again {took:.2f} s after the camera came back")
    assert sender.proc.poll() is None and receiver.proc.poll() is None
    assert sender.log().count("source down") == 1


def test_camera_frozen_then_thawed(services: Services, rtsp_camera: RtspCamera) -> None:
    receiver, sender = start(services, rtsp_camera)
    rtsp_camera.signal(signal.SIGSTOP)
    frozen = time.monotonic()
    wait_until(
        lambda: source_up(sender) == 0,
        timeout=READ_TIMEOUT + 1.5,
        interval=0.02,
        what="frozen camera detected within the read timeout plus a margin",
    )
    print(f"camera freeze detected in {time.monotonic() - frozen:.2f} s")
    assert_no_signal(receiver)
    rtsp_camera.signal(signal.SIGCONT)
    took = assert_recovers(receiver, sender, time.monotonic())
    print(f"frames again {took:.2f} s after the camera thawed")
    assert scrape(sender.url, "framewire_source_reconnects_total", camera="cam0") >= 1


def test_the_redis_receiver_tells_a_source_down_at_the_sender_from_a_sender_gone(
    services: Services, rtsp_camera: RtspCamera, redis_server: RedisServer
) -> None:
    receiver = services.receiver("redis", "--redis-url", redis_server.url, "--stale-after", "1")
    sender = services.sender(
        "--source",
        rtsp_camera.url,
        "--read-timeout",
        str(READ_TIMEOUT),
        "--open-timeout",
        "3",
        "--http-url",
        "",
        "--redis-url",
        redis_server.url,
    )

    def cam0() -> dict:
        return requests.get(f"{receiver.url}/stats", timeout=5).json()["cameras"].get("cam0", {})

    def live_and_up() -> bool:
        now = cam0()
        return now.get("sender") == "up" and now.get("signal") == "live"

    wait_until(live_and_up, timeout=20, what="frames, the source up")
    rtsp_camera.signal(signal.SIGKILL)
    wait_until(
        lambda: (now := cam0()).get("sender") == "source_down" and now["signal"] == "stale",
        timeout=10,
        what="the receiver told the source is down at the sender",
    )
    sender.stop()  # a clean stop deletes the sender's state: gone at once
    wait_until(lambda: cam0().get("sender") == "gone", timeout=5, what="the sender gone")
    page = requests.get(f"{receiver.url}/view/cam0", timeout=5).text
    assert "its source is down at the sender" in page and "its sender stopped" in page
