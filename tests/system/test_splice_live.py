"""Real receivers splice the real senders' frames."""

from __future__ import annotations

import cv2
import numpy as np
import requests
import simplejpeg

from conftest import RedisServer, Services, scrape, wait_until
from framewire.overlay import strip_height
from framewire.splice import encode_params
from framewire_bench.readers import read_metrics, select
from helpers import mjpeg_parts, post_frame

PATH = "framewire_viewer_encode_path_total"


def strict(jpeg: bytes) -> np.ndarray:
    return simplejpeg.decode_jpeg(jpeg, colorspace="BGR", strict=True)


def live_snapshot(url: str, query: str = "") -> bytes | None:
    """The receiver's snapshot, None while it shows no signal."""
    response = requests.get(f"{url}/snapshot.jpg{query}", timeout=5)
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


def sent_jpeg() -> bytes:
    """A 640x480 frame made as the sender makes it (restart markers every MCU row)."""
    image = cv2.resize(np.random.default_rng(3).integers(0, 256, (60, 80, 3), np.uint8), (640, 480))
    return cv2.imencode(".jpg", image, encode_params(80, image))[1].tobytes()


def test_a_stream_without_the_strip_is_the_senders_jpeg(services: Services) -> None:
    sent, band = sent_jpeg(), -(-strip_height(640) // 16) * 16  # the MCU rows the strip touches
    default = services.receiver("http", "--stale-after", "60")
    bare = services.receiver("http", "--stale-after", "60", env={"FRAMEWIRE_STRIP": "off"})
    for receiver, plain, other in ((default, "?strip=1", "?strip=0"), (bare, "", "?strip=1")):
        assert post_frame(receiver.url, "cam0", sent).status_code == 204
        with_strip = wait_until(lambda r=receiver, q=plain: live_snapshot(r.url, q), what="frame")
        assert live_snapshot(receiver.url, other if plain else "?strip=0") == sent
        if not plain:  # the receiver's option flipped the default: the bare route has no strip
            assert with_strip == sent
            with_strip = live_snapshot(receiver.url, other)
        assert with_strip is not None and with_strip != sent
        got, want = strict(with_strip), strict(sent)
        # below the band and the MCU row the decoder's chroma upsampling reads into: unchanged
        assert np.array_equal(got[band + 16 :], want[band + 16 :])
        assert not np.array_equal(got[:band], want[:band])
        query = "?strip=0" if plain else ""
        with requests.get(f"{receiver.url}/stream.mjpg{query}", stream=True, timeout=5) as response:
            assert mjpeg_parts(response, 1) == [sent]
        for route in ("/stream.mjpg?strip=2", "/snapshot/cam0.jpg?strip=on"):
            response = requests.get(f"{receiver.url}{route}", timeout=5)
            assert response.status_code == 400 and response.json()["error"] == "bad_variant"
