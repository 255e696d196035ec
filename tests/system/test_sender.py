"""The sender in process and as a process: threads end on stop, a dead camera is one quiet line."""

from __future__ import annotations

import threading

import pytest

from conftest import RedisServer, Services, free_port, scrape, wait_until
from framewire.config import SenderConfig
from framewire.fanout import Resolver, replica_url
from framewire.sender import CameraSender, publishers
from framewire.sources import open_source
from framewire.transports import redis as redis_wire


def test_no_framewire_thread_outlives_the_sender(redis_server: RedisServer) -> None:
    """Grabber and both transport workers (one failing, in backoff) are joined by stop()."""
    config = SenderConfig(
        width=160,
        height=120,
        http_url=f"http://127.0.0.1:{free_port()}/frames",  # nobody listens: errors, backoff
        redis_url=redis_server.url,
        metrics_bind="",
    )
    source = open_source(config.source, config.width, config.height, config.fps, 1.0, 1.0)
    sender = CameraSender(config, source, publishers(config))
    runner = threading.Thread(target=sender.run)
    runner.start()
    client = redis_server.client()
    wait_until(lambda: client.xlen(redis_wire.key("stream", "cam0")) >= 3, what="frames in Redis")
    errors = {"camera": "cam0", "transport": "http", "reason": "connect"}
    assert sample(sender, "framewire_send_errors_total", **errors) >= 1
    sender.stop()
    runner.join(timeout=10)
    assert not runner.is_alive()
    left = [t.name for t in threading.enumerate() if t.name.startswith("framewire-")]
    assert left == []


def sample(sender: CameraSender, name: str, **labels: str) -> float:
    return sender.metrics.registry.get_sample_value(name, labels) or 0.0


def test_unthrottled_the_sender_encodes_only_what_a_transport_takes(
    redis_server: RedisServer,
) -> None:
    """Encode on demand: frames encoded stay within 5% (or 2) of frames sent."""
    config = SenderConfig(
        width=320, height=240, fps=0, http_url="", redis_url=redis_server.url, metrics_bind=""
    )
    source = open_source(config.source, config.width, config.height, config.fps, 1.0, 1.0)
    sender = CameraSender(config, source, publishers(config))
    runner = threading.Thread(target=sender.run)
    runner.start()
    sent = {"camera": "cam0", "transport": "redis"}
    wait_until(lambda: sample(sender, "framewire_frames_sent_total", **sent) >= 300, what="sent")
    sender.stop()
    runner.join(timeout=10)
    encoded = sample(sender, "framewire_encode_seconds_count", camera="cam0")
    delivered = sample(sender, "framewire_frames_sent_total", **sent)
    dropped = sample(sender, "framewire_frames_dropped_total", **sent, stage="send")
    print(f"encoded {encoded:.0f}, sent {delivered:.0f}, dropped unsent {dropped:.0f}")
    assert encoded - delivered <= max(2, 0.05 * delivered)


def test_a_dead_camera_is_one_line_not_ffmpeg_noise(services: Services) -> None:
    """FFmpeg and OpenCV print two lines per reconnect by themselves; framewire keeps one."""
    url = f"rtsp://127.0.0.1:{free_port()}/nobody"
    sender = services.sender(
        "--source", url, "--open-timeout", "0.5", "--http-url", "", "--redis-url", "redis://x:1"
    )
    reconnects = "framewire_source_reconnects_total"
    wait_until(lambda: scrape(sender.url, reconnects, camera="cam0") >= 4, what="reconnects")
    sender.stop()
    log = sender.log()
    assert log.count("source down") == 1, log
    noise = [line for line in log.splitlines() if "[tcp @" in line or "[ WARN" in line]
    assert noise == [], log


def test_replica_urls_keep_everything_but_the_host() -> None:
    url = "http://user:pw@receivers.example:8001/frames?x=1"
    assert replica_url(url, "10.1.2.3") == "http://user:pw@10.1.2.3:8001/frames?x=1"
    assert replica_url("http://h/frames", "fd00::7") == "http://[fd00::7]/frames"
    assert replica_url("http://h:9/f", "fe80::1%eth0") == "http://[fe80::1%25eth0]:9/f"


def test_a_failed_resolve_keeps_the_replicas_known(caplog: pytest.LogCaptureFixture) -> None:
    """localhost resolves; then the name fails: the set stays, one line per change of state."""
    resolver = Resolver("http://localhost:8001/frames", 1.0)
    seen: list[tuple[str, ...]] = []
    resolver.subscribe(seen.append)
    resolver.refresh()
    assert seen and "127.0.0.1" in seen[0]
    resolver.host = "nothing.invalid"
    for _ in range(3):
        resolver.refresh()
    assert resolver.addresses == seen[0] and len(seen) == 1
    downs = [r for r in caplog.records if "resolving down" in r.getMessage()]
    assert len(downs) == 1, caplog.text


def test_fanout_camera_with_no_replica_yet_encodes_nothing_for_http() -> None:
    """Encode on demand: with no replica known, HTTP has no room (Redis absent: nothing)."""
    config = SenderConfig(
        width=160,
        height=120,
        http_url=f"http://127.0.0.1:{free_port()}/frames",
        http_fanout="dns",
        redis_url="",
        metrics_bind="",
    )
    source = open_source(config.source, config.width, config.height, config.fps, 1.0, 1.0)
    resolver = Resolver(config.http_url, 60.0)  # never started: no addresses
    sender = CameraSender(config, source, publishers(config), resolver=resolver)
    assert publishers(config) == [] and [w.name for w in sender.workers] == ["http"]
    runner = threading.Thread(target=sender.run)
    runner.start()
    capture_drops = {"camera": "cam0", "transport": "none", "stage": "capture"}
    wait_until(
        lambda: sample(sender, "framewire_frames_dropped_total", **capture_drops) >= 5,
        what="frames grabbed and left unencoded",
    )
    assert sample(sender, "framewire_encode_seconds_count", camera="cam0") == 0
    resolver.refresh()  # now 127.0.0.1: one replica, nobody listening -> errors, drops counted
    replica = {"camera": "cam0", "replica": "127.0.0.1"}
    wait_until(
        lambda: sample(sender, "framewire_replica_frames_dropped_total", **replica) >= 3,
        what="the replica's drops",
    )
    assert sample(sender, "framewire_http_replicas", camera="cam0") == 1
    assert sample(sender, "framewire_replica_up", **replica) == 0
    sender.stop()
    runner.join(timeout=10)
    assert not runner.is_alive()
    assert sender.metrics.registry.get_sample_value("framewire_replica_up", replica) is None
    left = [t.name for t in threading.enumerate() if t.name.startswith("framewire-")]
    assert left == []
