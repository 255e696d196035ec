"""The sender in process and as a process: threads end on stop, a dead camera is one quiet line."""

from __future__ import annotations

import threading

from conftest import RedisServer, Services, free_port, scrape, wait_until
from framewire.config import SenderConfig
from framewire.sender import Sender, publishers
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
    sender = Sender(config, source, publishers(config))
    runner = threading.Thread(target=sender.run)
    runner.start()
    client = redis_server.client()
    wait_until(lambda: client.xlen(redis_wire.key("stream", "cam0")) >= 3, what="frames in Redis")
    assert sender.metrics.send_errors.labels("cam0", "http", "connect")._value.get() >= 1
    sender.stop()
    runner.join(timeout=10)
    assert not runner.is_alive()
    left = [t.name for t in threading.enumerate() if t.name.startswith("framewire-")]
    assert left == []


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
