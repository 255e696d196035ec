"""POST /frames against a real gunicorn http-receiver: a frame accepted and served, unknown
cameras refused. The refusals are held in process (tests/unit/test_frame.py: every reason;
tests/unit/test_routes.py: each answer) and, for what only the worker refuses, by
tests/system/test_hostile_input.py."""

from __future__ import annotations

import time

import pytest
import requests

from conftest import Service, Services, scrape, wait_until
from framewire.frame import Frame
from framewire.transports import http as http_wire
from helpers import decode, make_jpeg


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Service:
    services = Services(tmp_path_factory.mktemp("http-receiver"))
    service = services.receiver("http", "--stale-after", "30")
    yield service
    services.stop_all()


def post(url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(f"{url}/frames", data=body, headers=headers, timeout=10)


def test_frame_is_accepted_and_served(receiver: Service) -> None:
    jpeg = make_jpeg(320, 240, seed=1)
    frame = Frame("wire", 1234, time.time_ns(), jpeg)
    response = post(receiver.url, jpeg, http_wire.headers(frame))
    assert response.status_code == 204, response.text

    def snapshot() -> requests.Response | None:
        r = requests.get(f"{receiver.url}/snapshot/wire.jpg", timeout=5)
        return r if r.status_code == 200 else None

    served = wait_until(snapshot, what="snapshot of camera 'wire'")
    assert served.headers["X-Framewire-Seq"] == "1234"
    assert decode(served.content).shape == (240, 320, 3)
    assert (
        scrape(receiver.url, "framewire_frames_received_total", camera="wire", transport="http")
        >= 1
    )


def test_unknown_camera_routes_are_404_and_create_nothing(receiver: Service) -> None:
    assert requests.get(f"{receiver.url}/snapshot/..%2f.jpg", timeout=5).status_code == 404
    for path in ("/snapshot/never-seen.jpg", "/stream/never-seen.mjpg"):
        response = requests.get(f"{receiver.url}{path}", timeout=5)
        assert response.status_code == 404
        assert response.json()["error"] == "unknown_camera"
    assert "never-seen" not in requests.get(f"{receiver.url}/stats", timeout=5).json()["cameras"]
