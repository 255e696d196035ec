"""The sender in process and as a process: threads end on stop, a dead camera is one quiet line."""

from __future__ import annotations

import threading

from conftest import RedisServer, Services, free_port, scrape, wait_until
from framewire.config import SenderConfig
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
