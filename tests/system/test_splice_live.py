"""Real receivers splice the real senders' frames."""

from __future__ import annotations

import numpy as np
import requests
import simplejpeg

from conftest import RedisServer, Services, scrape, wait_until
from framewire_bench.readers import read_metrics, select

PATH = "framewire_viewer_encode_path_total"


def strict(jpeg: bytes) -> np.ndarray:
    return simplejpeg.decode_jpeg(jpeg, colorspace="BGR", strict=True)


def live_snapshot(url: str) -> bytes | None:
    """The receiver's snapshot, None while it shows no signal."""
    response = requests.get(f"{url}/snapshot.jpg", timeout=5)
    return response.content if response.status_code == 200 else None


def test_real_receivers_splice_the_real_senders_frames(
    services: Services, redis_server: RedisServer
) -> None:
    http, red, _ = services.stack(redis_server)  # the default setup: processor none, q80
    for receiver, transport in ((http, "http"), (red, "redis")):
        snapshot = wait_until(lambda r=receiver: live_snapshot(r.url), what=f"{transport} frame")
        assert strict(snapshot).shape == (240, 320, 3)
        labels = {"camera": "cam0", "transport": transport}
        wait_until(
            lambda r=receiver, labels=labels: scrape(r.url, PATH, **labels, path="splice") >= 1,
            what=f"a spliced {transport} frame in /metrics",
        )
        samples = select(read_metrics(receiver.url), PATH)
        assert {(s[0]["path"], s[0]["reason"]) for s in samples} == {("splice", "ok")}, samples
