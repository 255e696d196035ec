"""A sender with a file source feeds a real receiver."""

from __future__ import annotations

from pathlib import Path

from conftest import RedisServer, Services, scrape, wait_until
from helpers import write_clip


def test_sender_with_a_file_source_feeds_the_receiver(
    services: Services, redis_server: RedisServer, tmp_path: Path
) -> None:
    clip = write_clip(tmp_path / "clip.avi", frames=10, fps=25)
    red = services.receiver("redis", "--redis-url", redis_server.url)
    sender = services.sender(
        "--source", str(clip), "--http-url", "", "--redis-url", redis_server.url
    )
    wait_until(
        lambda: (
            scrape(red.url, "framewire_frames_received_total", camera="cam0", transport="redis")
            > 20
        ),
        what="frames beyond the clip's 10",
    )
    assert scrape(sender.url, "framewire_source_up", camera="cam0") == 1
    assert scrape(sender.url, "framewire_source_reconnects_total", camera="cam0") == 0
