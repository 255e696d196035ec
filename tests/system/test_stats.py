"""/stats on both receivers: live fps, served latency, drops, viewers, state; CORS; the page."""

from __future__ import annotations

import time

import requests

from conftest import RedisServer, Service, Services, scrape, wait_until
from helpers import Viewer

SMALL = ("--width", "320", "--height", "240")
CAMERA_FIELDS = {"state", "seq", "fps", "latency_ms", "drops", "viewers", "age_seconds"}


def stats(receiver: Service) -> dict:
    response = requests.get(f"{receiver.url}/stats", timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def camera(receiver: Service, name: str = "cam0") -> dict:
    return stats(receiver)["cameras"].get(name, {})


def start_pair(
    services: Services, redis_server: RedisServer, *receiver_args: str
) -> tuple[Service, Service]:
    http = services.receiver("http", *receiver_args)
    red = services.receiver("redis", "--redis-url", redis_server.url, *receiver_args)
    return http, red


def test_stats_report_live_figures_then_no_signal(
    services: Services, redis_server: RedisServer
) -> None:
    receivers = start_pair(services, redis_server, "--stale-after", "1")
    http = receivers[0]
    sender = services.sender(
        "--http-url", f"{http.url}/frames", "--redis-url", redis_server.url, *SMALL
    )
    # The bare stream is the first camera that exists: none before its first frame.
    for receiver in receivers:
        wait_until(lambda r=receiver: camera(r), what=f"cam0 known to {receiver.name}")
    viewers = [Viewer(f"{r.url}/stream.mjpg") for r in receivers]
    for viewer in viewers:
        viewer.start()
    try:
        for receiver in receivers:
            wait_until(
                lambda r=receiver: (
                    camera(r).get("state") == "live"
                    and camera(r)["fps"] > 0
                    and camera(r)["latency_ms"]["samples"] >= 10
                ),
                what=f"{receiver.name} /stats live with fps and latencies",
            )
            response = requests.get(f"{receiver.url}/stats", timeout=5)
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert response.headers["Cache-Control"] == "no-store"
            body = response.json()
            assert body["transport"] == ("http" if receiver is http else "redis")
            assert abs(body["server_time"] - time.time()) < 5
            assert body["default_camera"] == "cam0"
            cam = body["cameras"]["cam0"]
            assert set(cam) >= CAMERA_FIELDS, cam
            assert 5 < cam["fps"] < 60, cam
            latency = cam["latency_ms"]
            assert 0 < latency["p50"] <= latency["p95"] < 1000, latency
            assert set(cam["drops"]) >= {"receive", "process"}
            assert all(isinstance(n, int) and n >= 0 for n in cam["drops"].values())
            assert cam["viewers"] == 1
            assert cam["seq"] > 0
            assert 0 <= cam["age_seconds"] < 1
        sender.stop()
        for receiver in receivers:
            wait_until(
                lambda r=receiver: camera(r)["state"] == "no signal" and camera(r)["fps"] == 0,
                what=f"{receiver.name} /stats to say no signal",
            )
            assert camera(receiver)["age_seconds"] > 1
    finally:
        for viewer in viewers:
            viewer.close()


def test_stats_list_received_cameras_and_the_default(
    services: Services, redis_server: RedisServer
) -> None:
    http, _ = start_pair(services, redis_server)
    assert stats(http)["cameras"] == {} and stats(http)["default_camera"] is None
    # A camera named by --default-camera is known before its first frame.
    declared = services.receiver("http", "--default-camera", "cam0")
    idle = camera(declared)
    assert idle["state"] == "no signal"
    assert idle["seq"] is None and idle["age_seconds"] is None and idle["fps"] == 0
    assert idle["latency_ms"] == {"p50": None, "p95": None, "samples": 0}
    # A viewer asking for a camera that never sent anything does not make it a camera.
    assert requests.get(f"{http.url}/snapshot/ghost.jpg", timeout=5).status_code == 404
    for name in ("cam0", "cam1"):
        services.sender("--camera", name, "--http-url", f"{http.url}/frames", "--redis-url", "")
    wait_until(
        lambda: all(camera(http, n).get("state") == "live" for n in ("cam0", "cam1")),
        what="both cameras live in /stats",
    )
    assert set(stats(http)["cameras"]) == {"cam0", "cam1"}


def test_stats_never_encode_a_frame(services: Services, redis_server: RedisServer) -> None:
    """Nobody watches: /stats (and the page) must not encode for viewers."""
    http, _ = start_pair(services, redis_server)
    services.sender("--http-url", f"{http.url}/frames", "--redis-url", "", *SMALL)
    wait_until(lambda: camera(http).get("fps", 0) > 5, what="frames flowing")
    for _ in range(20):
        stats(http)
    requests.get(f"{http.url}/", timeout=5).raise_for_status()
    served = scrape(http.url, "framewire_frame_latency_seconds_count", stage="served")
    assert served == 0
    assert camera(http)["latency_ms"]["samples"] == 0


def test_page_shows_peer_and_grafana_when_configured(
    services: Services, redis_server: RedisServer
) -> None:
    peer, grafana = "http://peer.example:8002", "http://grafana.example:3000/d/framewire"
    alone = services.receiver("http", "--peer-port", "0")
    by_port = services.receiver("http")  # the Redis receiver's port, 8002, by default
    compared = services.receiver(
        "http", "--peer-url", peer + "/", "--grafana-url", grafana, "--default-camera", "cam0"
    )
    page = requests.get(f"{alone.url}/", timeout=5).text
    assert 'data-side="own"' in page and 'data-side="peer"' not in page
    assert "--peer-port" in page and "--peer-url" in page and "Grafana" not in page
    page = requests.get(f"{by_port.url}/", timeout=5).text
    assert 'data-side="peer"' in page and '"peer_port": 8002' in page
    assert '"peer_url": ""' in page  # the browser builds the URL from its own location
    page = requests.get(f"{compared.url}/", timeout=5).text
    assert 'data-side="peer"' in page and '"peer_port": 0' in page  # --peer-url wins
    assert f'data-src="{peer}/stream/cam0.mjpg"' in page
    assert f'href="{grafana}"' in page
    # No external resources: the only absolute URLs are the configured ones.
    rest = page.replace(peer, "").replace(grafana, "")
    assert "http://" not in rest and "https://" not in rest and '"//' not in rest
