"""Stream variants and the grid: bounded parameters, one encode per frame and variant, the mosaic.

Route-level checks run in process (the `client` fixture); the rates, the
shared encodes and the grid run against a real receiver fed by a real sender.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from conftest import wait_until
from framewire.config import ReceiverConfig
from framewire.hub import Hub
from framewire.metrics import ReceiverMetrics
from framewire.variants import key_label
from helpers import decode, ends_at_shutdown, make_jpeg, tiles

ENCODES = "framewire_viewer_encodes_total"


def post(client: FlaskClient, camera: str, seq: int, jpeg: bytes) -> None:
    headers = {
        "Content-Type": "image/jpeg",
        "X-Framewire-Camera": camera,
        "X-Framewire-Seq": str(seq),
        "X-Framewire-Captured-Ns": str(time.time_ns()),
    }
    assert client.post("/frames", data=jpeg, headers=headers).status_code in (200, 202, 204)


def first_part(client: FlaskClient, url: str) -> tuple[bytes, bytes]:
    """(headers, JPEG body) of the first part of the stream at `url`."""
    response = client.get(url)
    assert response.status_code == 200, response.get_json()
    parts = iter(response.response)
    next(parts)  # the opening boundary
    head, _, body = next(parts).partition(b"\r\n\r\n")
    response.close()
    return head, body.removesuffix(b"\r\n--framewireframe\r\n")


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("width=500", "width"),
        ("width=abc", "width"),
        ("fps=7", "fps"),
        ("fps=", "fps"),
        ("quality=99", "quality"),
        ("quality=full", "quality"),
        ("strip=2", "strip"),
        ("strip=off", "strip"),
    ],
)
def test_bad_variant_is_a_400_naming_the_parameter(
    client: FlaskClient, query: str, named: str
) -> None:
    response = client.get(f"/stream.mjpg?{query}")
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "bad_variant"
    assert body["detail"].startswith(f"{named}=")
    assert "one of" in body["detail"]
    assert client.get(f"/stream/cam0.mjpg?{query}").status_code == 400


def test_bad_grid_fps_is_a_400(client: FlaskClient) -> None:
    response = client.get("/grid.mjpg?fps=30")
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad_variant"
    assert "1, 2, 5, 10" in response.get_json()["detail"]


def test_parts_carry_seq_and_capture_time_and_variants_keep_the_aspect(
    client: FlaskClient,
) -> None:
    before = time.time_ns()
    post(client, "cam0", 7, make_jpeg(1280, 720, seed=1))
    wait_until(lambda: client.get("/stats").json["cameras"]["cam0"]["seq"] == 7, what="frame 7")
    head, body = first_part(client, "/stream.mjpg")
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
    assert headers["Content-Type"] == "image/jpeg"
    assert int(headers["Content-Length"]) == len(body)
    assert headers["X-Framewire-Seq"] == "7"
    assert before <= int(headers["X-Framewire-Captured-Ns"]) <= time.time_ns()
    assert decode(body).shape == (720, 1280, 3)  # the full stream as before

    for query, shape in [
        ("width=640", (360, 640)),
        ("width=320&quality=50&fps=30", (180, 320)),
        ("width=1280", (720, 1280)),
        ("width=full&fps=full", (720, 1280)),
    ]:
        head, body = first_part(client, f"/stream/cam0.mjpg?{query}")
        assert decode(body).shape[:2] == shape, query
        assert b"X-Framewire-Seq: 7" in head
    post(client, "cam0", 8, make_jpeg(320, 240, seed=2))  # never upscaled
    wait_until(lambda: client.get("/stats").json["cameras"]["cam0"]["seq"] == 8, what="frame 8")
    assert decode(first_part(client, "/stream.mjpg?width=960")[1]).shape[:2] == (240, 320)


def test_a_variant_nobody_watches_keeps_no_picture() -> None:
    metrics = ReceiverMetrics()
    hub = Hub(metrics, ReceiverConfig(stale_after=30.0))
    try:
        channel = hub.add("cam0")
        image = decode(make_jpeg(1280, 720))
        channel.publish(image, 1, time.time_ns())
        key = (640, 50, True)
        with hub.open("cam0", key):
            with hub.open("cam0", key):
                assert channel.cache.get(key) is channel.cache.get(key)  # encoded once, shared
                assert key in channel.cache
            assert key in channel.cache
        assert key not in channel.cache  # its JPEG is let go with the last viewer
        channel.cache.get((320, None, True))  # unwatched (a race at close): served, not kept
        assert (320, None, True) not in channel.cache
        labels = {"camera": "cam0", "transport": "http"}
        for key, count in [((640, 50, True), 1), ((320, None, True), 1)]:
            sample = metrics.registry.get_sample_value(
                f"{ENCODES}", {**labels, "variant": key_label(key)}
            )
            assert sample == count, key
    finally:
        hub.close()


def test_grid_shows_no_signal_for_a_stale_camera() -> None:
    metrics = ReceiverMetrics()
    hub = Hub(metrics, ReceiverConfig(stale_after=30.0, max_cameras=4))
    try:
        hub.add("cam0").publish(decode(make_jpeg(640, 360)), 1, time.time_ns())
        hub.add("door")  # known, no frame: NO SIGNAL
        mosaic = hub.grid.compose()
        live_tile, dead_tile = tiles(mosaic, 2)
        assert mosaic.shape == (360, 1280, 3)
        assert float(dead_tile.std()) < float(live_tile.std())
        # the alarm label is red (BGR), the live label white
        strip = dead_tile[-20:]
        assert (strip[..., 2] > 200).any() and not (strip[..., 0] > 200).all()
    finally:
        hub.close()


def test_grid_stream_ends_at_shutdown(app: Flask, client: FlaskClient) -> None:
    response = client.get("/grid.mjpg?fps=10")
    parts = iter(response.response)
    assert next(parts).startswith(b"--framewireframe")
    head, _, body = next(parts).partition(b"\r\n\r\n")
    assert b"Content-Type: image/jpeg" in head and b"X-Framewire-Seq" not in head
    mosaic = decode(body.removesuffix(b"\r\n--framewireframe\r\n"))
    assert mosaic.shape == (720, 1280, 3) and not mosaic.any()  # no camera yet: no tile
    assert ends_at_shutdown(app, parts), "the grid stream did not end at shutdown"
    response.close()


def snapshot_after(client: FlaskClient, seq: int) -> np.ndarray:
    """The snapshot once frame `seq` is served: the decoded, annotated image."""

    def served() -> bytes | None:
        response = client.get("/snapshot.jpg")
        return response.data if response.headers.get("X-Framewire-Seq") == str(seq) else None

    return decode(wait_until(served, what=f"frame {seq} served"))


def test_only_narrow_variants_watched_decode_at_a_reduced_dct_scale(client: FlaskClient) -> None:
    """A 320 px stream alone: frames are decoded at 1/4 scale; a full-width viewer restores it."""
    jpeg = make_jpeg(1280, 720)
    post(client, "cam0", 1, jpeg)
    assert snapshot_after(client, 1).shape == (720, 1280, 3)  # nobody watches: full size
    narrow = client.get("/stream.mjpg?width=320")
    try:
        post(client, "cam0", 2, jpeg)
        assert snapshot_after(client, 2).shape == (180, 320, 3)
        wide = client.get("/stream.mjpg?width=640")
        post(client, "cam0", 3, jpeg)
        assert snapshot_after(client, 3).shape == (360, 640, 3)  # the widest variant decides
        full = client.get("/stream.mjpg")
        post(client, "cam0", 4, jpeg)
        assert snapshot_after(client, 4).shape == (720, 1280, 3)
        full.close()
        wide.close()
    finally:
        narrow.close()
    post(client, "cam0", 5, jpeg)
    assert snapshot_after(client, 5).shape == (720, 1280, 3)
