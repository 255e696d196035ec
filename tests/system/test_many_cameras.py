"""One sender, three cameras (two synthetic, one on the real GStreamer RTSP server), both
receivers, a real Prometheus and the page in a real Chromium; then the RTSP camera dies.

The synthetic cameras must not notice: each keeps at least 29 of its 30 fps at both
receivers, counted from the receivers' per-frame logs over a window of capture time.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from conftest import RedisServer, RtspCamera, Service, Services, free_port, scrape, wait_until
from framewire_bench.stack import write_cameras
from helpers import live, received_fps
from test_browser import browser, open_page  # noqa: F401 - the Chromium fixture
from test_prometheus import prometheus, query  # noqa: F401 - the Prometheus fixture

if TYPE_CHECKING:
    from playwright.sync_api import Browser

SECRET = "door-pw-8c1f2e"
SYNTHETIC = ("cam0", "cam1")
RTSP = "door"
WINDOW_S = 4.0


def cameras_file(tmp_path: Path, rtsp: RtspCamera) -> Path:
    """Two small synthetic cameras at 30 fps and the RTSP camera, its password by reference."""
    url = rtsp.url.replace("rtsp://", "rtsp://viewer:${FW_TEST_DOOR_PASSWORD}@")
    cameras = [{"id": camera, "width": 160, "height": 120, "fps": 30} for camera in SYNTHETIC]
    cameras.append({"id": RTSP, "source": url, "read_timeout": 2, "open_timeout": 2})
    return write_cameras(tmp_path / "cameras.yaml", cameras)


def ready(receiver: Service, camera: str) -> int:
    return requests.get(f"{receiver.url}/readyz", params={"camera": camera}, timeout=5).status_code


def test_one_sender_three_cameras_and_one_dies(
    tmp_path: Path,
    services: Services,
    redis_server: RedisServer,
    rtsp_camera: RtspCamera,
    prometheus: Callable[[dict[str, list[str]]], str],  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    everything = (*SYNTHETIC, RTSP)
    http_port = free_port()  # each receiver's page compares with the other, found by port
    red = services.receiver(
        "redis",
        "--redis-url",
        redis_server.url,
        "--stale-after",
        "1",
        "--peer-port",
        str(http_port),
    )
    red_port = red.url.rsplit(":", 1)[1]
    http = services.receiver("http", "--stale-after", "1", "--peer-port", red_port, port=http_port)
    sender = services.sender(
        "--cameras-file",
        str(cameras_file(tmp_path, rtsp_camera)),
        "--http-url",
        f"{http.url}/frames",
        "--redis-url",
        redis_server.url,
        env={"FW_TEST_DOOR_PASSWORD": SECRET},
    )
    for receiver in (http, red):
        wait_until(
            lambda r=receiver: live(r, everything), what=f"3 cameras live at {receiver.name}"
        )

    # The RTSP camera dies: only its own source goes down.
    rtsp_camera.signal(signal.SIGKILL)
    killed_ns = time.time_ns()
    wait_until(
        lambda: scrape(sender.url, "framewire_source_up", camera=RTSP) == 0,
        timeout=10,
        what="the RTSP camera's source_up to drop to 0",
    )
    for receiver in (http, red):
        wait_until(
            lambda r=receiver: ready(r, RTSP) == 503, what=f"{RTSP} not ready at {receiver.name}"
        )
        for camera in SYNTHETIC:
            assert ready(receiver, camera) == 200
            fps = received_fps(receiver, camera, killed_ns, WINDOW_S)
            print(f"{receiver.name} {camera}: {fps:.2f} fps after the RTSP camera died")
            assert fps >= 29, f"{camera} at {receiver.name}: {fps:.2f} fps"
    for camera in SYNTHETIC:
        assert scrape(sender.url, "framewire_source_up", camera=camera) == 1

    # Prometheus scrapes the one sender and sees every camera, at the sender and the receivers.
    jobs = {"sender": sender, "http-receiver": http, "redis-receiver": red}
    prom = prometheus({job: [s.url.removeprefix("http://")] for job, s in jobs.items()})
    wait_until(
        lambda: (
            {r["metric"]["camera"] for r in query(prom, "framewire_source_up")} == set(everything)
        ),
        timeout=60,
        what="Prometheus: the sender's source_up for all three cameras",
    )
    wait_until(
        lambda: len(query(prom, "sum by (job, camera) (framewire_frames_received_total)")) == 6,
        timeout=60,
        what="Prometheus: frames received for three cameras at each receiver",
    )

    # The page shows one tile per camera (the dead one too: it has not been forgotten).
    page = open_page(browser, http.url)
    page.wait_for_function("document.querySelectorAll('#grid .tile').length === 3")
    tiles = page.eval_on_selector_all("#grid .tile", "ts => ts.map(t => t.dataset.camera)")
    assert sorted(tiles) == sorted(everything)
    dot = f"#grid .tile[data-camera={RTSP}] .dot"
    page.wait_for_function(f"document.querySelector('{dot}').dataset.state === 'no signal'")
    page.close()

    log = sender.log()
    assert log.count(f"camera {RTSP} source down") == 1, log
    assert "camera cam0 source down" not in log
    metrics = requests.get(f"{sender.url}/metrics", timeout=5).text
    assert SECRET not in log + metrics
    assert "viewer:***@127.0.0.1" in log
