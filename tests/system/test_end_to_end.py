"""The whole pipeline: synthetic sender -> HTTP and Redis -> receivers -> snapshots and MJPEG."""

from __future__ import annotations

import time

import pytest
import requests

from conftest import RedisServer, Services, scrape, wait_until
from helpers import decode, mjpeg_parts

SMALL = ("--width", "320", "--height", "240")


def snapshot(url: str) -> tuple[int, int] | None:
    """(seq, captured_ns) of the receiver's current snapshot, None while it has no signal."""
    r = requests.get(f"{url}/snapshot.jpg", timeout=5)
    if r.status_code != 200:
        return None
    decode(r.content)
    return int(r.headers["X-Framewire-Seq"]), int(r.headers["X-Framewire-Captured-Ns"])


def test_frames_reach_both_receivers(services: Services, redis_server: RedisServer) -> None:
    http, red, sender = services.stack(redis_server)
    for receiver in (http, red):
        first = wait_until(lambda r=receiver: snapshot(r.url), what=f"{receiver.name} snapshot")
        wait_until(
            lambda r=receiver, f=first: (s := snapshot(r.url)) and s[0] > f[0],
            what=f"{receiver.name} sequence number to advance",
        )
        assert requests.get(f"{receiver.url}/readyz", timeout=5).status_code == 200
        with requests.get(f"{receiver.url}/stream.mjpg", stream=True, timeout=10) as stream:
            parts = mjpeg_parts(stream, 5)
        assert len(parts) == 5
        assert len(set(parts)) == 5, "MJPEG parts should be distinct frames"
        for part in parts:
            assert decode(part).shape == (240, 320, 3)
        page = requests.get(f"{receiver.url}/", timeout=5)
        assert "stream/cam0.mjpg" in page.text
    # Each frame was encoded once and handed to both transports.
    assert scrape(sender.url, "framewire_frames_sent_total", camera="cam0", transport="http") > 0
    assert scrape(sender.url, "framewire_frames_sent_total", camera="cam0", transport="redis") > 0
    assert scrape(sender.url, "framewire_source_up", camera="cam0") == 1


def test_viewer_gauge_follows_open_streams(services: Services, redis_server: RedisServer) -> None:
    # Its streams are read once and then left unread: a long --viewer-timeout keeps a loaded
    # machine from dropping them (their seats) before the cap is tried.
    http, _, _ = services.stack(redis_server, "--max-viewers", "2", "--viewer-timeout", "300")
    wait_until(lambda: snapshot(http.url), what="first frame")
    viewers = lambda: scrape(http.url, "framewire_viewers", camera="cam0", transport="http")  # noqa: E731
    streams = [requests.get(f"{http.url}/stream.mjpg", stream=True, timeout=10) for _ in range(2)]
    for s in streams:
        mjpeg_parts(s, 1)
    assert viewers() == 2
    refused = requests.get(f"{http.url}/stream.mjpg", timeout=10)
    assert refused.status_code == 503
    assert refused.json()["error"] == "viewer_limit"
    for s in streams:
        s.close()
    wait_until(lambda: viewers() == 0, what="viewer gauge back to zero after clients left")


def test_one_dead_transport_does_not_stall_the_other(
    services: Services, redis_server: RedisServer
) -> None:
    red = services.receiver("redis", "--redis-url", redis_server.url)
    # Nothing listens on the HTTP side: every send fails, Redis must keep flowing.
    sender = services.sender(
        "--http-url", "http://127.0.0.1:9/frames", "--redis-url", redis_server.url, *SMALL
    )
    first = wait_until(lambda: snapshot(red.url), what="redis snapshot")
    wait_until(
        lambda: (s := snapshot(red.url)) and s[0] > first[0] + 30,
        what="redis path to keep delivering",
    )
    assert (
        scrape(
            sender.url,
            "framewire_send_errors_total",
            camera="cam0",
            transport="http",
            reason="connect",
        )
        >= 1
    )
    dropped = "framewire_frames_dropped_total"
    assert scrape(sender.url, dropped, camera="cam0", transport="http", stage="send") > 0
    assert sender.log().count("http transport down") == 1


def test_slow_processing_keeps_frame_age_bounded(
    services: Services, redis_server: RedisServer
) -> None:
    """A 0.2 s processing step at 30 fps: frames are dropped, never queued."""
    http, red, _ = services.stack(redis_server, "--processor", "helpers:Slow")

    def age(url: str) -> float:
        seq_captured = wait_until(lambda: snapshot(url), what="snapshot")
        return (time.time_ns() - seq_captured[1]) / 1e9

    for receiver in (http, red):
        wait_until(lambda r=receiver: snapshot(r.url), what="first processed frame")
    early = {r.name: age(r.url) for r in (http, red)}
    # Let a queue build up if there were one: 4 s at 30 fps in, 5 fps out = ~100 frames behind.
    wait_until(
        lambda: (
            scrape(
                http.url,
                "framewire_frames_dropped_total",
                camera="cam0",
                transport="http",
                stage="process",
            )
            > 100
        ),
        timeout=30,
        what="100 frames dropped by the slow step",
    )
    for receiver in (http, red):
        late = age(receiver.url)
        assert late < 1.0, f"{receiver.name}: frame age grew to {late:.2f} s"
        assert late < early[receiver.name] + 0.5
    assert (
        scrape(
            red.url,
            "framewire_frames_dropped_total",
            camera="cam0",
            transport="redis",
            stage="process",
        )
        > 0
    )
    fps = scrape(http.url, "framewire_receive_fps", camera="cam0", transport="http")
    assert 2 < fps < 7, f"delivered fps should show the slow step's ~5 fps, got {fps}"


def test_sigterm_stops_every_service_quickly_with_open_streams(
    services: Services, redis_server: RedisServer
) -> None:
    http, red, sender = services.stack(redis_server)
    streams = []
    for receiver in (http, red):
        wait_until(lambda r=receiver: snapshot(r.url), what=f"{receiver.name} frames")
        stream = requests.get(f"{receiver.url}/stream.mjpg", stream=True, timeout=10)
        mjpeg_parts(stream, 2)
        streams.append(stream)
    for service in (http, red, sender):
        took = service.stop()
        assert service.proc.returncode == 0, service.log()
        assert took < 3.0, f"{service.name} took {took:.2f} s to stop"
    for stream in streams:
        stream.close()


def test_annotated_frame_is_encoded_once_for_all_viewers(
    services: Services, redis_server: RedisServer
) -> None:
    http, _, _ = services.stack(redis_server)
    wait_until(lambda: snapshot(http.url), what="first frame")

    def count(name: str, **labels: str) -> float:
        return scrape(http.url, name, camera="cam0", transport="http", **labels)

    streams = [requests.get(f"{http.url}/stream.mjpg", stream=True, timeout=10) for _ in range(3)]
    received_before = count("framewire_frames_received_total")
    encoded_before = count("framewire_frame_latency_seconds_count", stage="served")
    for stream in streams:
        assert len(mjpeg_parts(stream, 15)) == 15
    encoded = count("framewire_frame_latency_seconds_count", stage="served") - encoded_before
    received = count("framewire_frames_received_total") - received_before
    for stream in streams:
        stream.close()
    # Three viewers read 45 parts in all, yet each frame was encoded at most once.
    assert 0 < encoded <= received + 1


@pytest.mark.parametrize(
    ("http_mode", "redis_mode"), [("form-base64", "set-publish"), ("raw", "pubsub")]
)
def test_comparison_modes_deliver(
    services: Services, redis_server: RedisServer, http_mode: str, redis_mode: str
) -> None:
    """The article's ways (and plain pub/sub) work end to end, for the benchmark."""
    http = services.receiver("http")
    red = services.receiver("redis", "--redis-url", redis_server.url, "--redis-mode", redis_mode)
    services.sender(
        "--http-url",
        f"{http.url}/frames",
        "--redis-url",
        redis_server.url,
        "--http-mode",
        http_mode,
        "--redis-mode",
        redis_mode,
        *SMALL,
    )
    for receiver in (http, red):
        first = wait_until(lambda r=receiver: snapshot(r.url), what=f"{receiver.name} snapshot")
        wait_until(
            lambda r=receiver, f=first: (s := snapshot(r.url)) and s[0] > f[0] + 10,
            what=f"{receiver.name} frames over {http_mode}/{redis_mode}",
        )
