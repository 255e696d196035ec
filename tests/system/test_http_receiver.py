"""POST /frames against a real gunicorn http-receiver: the contract, and every refusal."""

from __future__ import annotations

import time

import pytest
import requests

from conftest import Service, Services, scrape, wait_until
from framewire.frame import Frame
from framewire.transports import http as http_wire
from helpers import claiming, decode, make_jpeg


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Service:
    services = Services(tmp_path_factory.mktemp("http-receiver"))
    service = services.receiver("http", "--max-body", "200000", "--stale-after", "30")
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


JPEG = make_jpeg()
GOOD = http_wire.headers(Frame("cam0", 1, 1_700_000_000_000_000_000, JPEG))


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        (b"not a jpeg at all", GOOD, 422, "not_jpeg"),
        (JPEG[: len(JPEG) // 2], GOOD, 422, "truncated_jpeg"),
        (b"\xff\xd8" + b"\x00" * 500 + b"\xff\xd9", GOOD, 422, "undecodable"),
        (b"", GOOD, 422, "empty_body"),
        (claiming(JPEG, 65000, 65000), GOOD, 422, "too_many_pixels"),
        (JPEG, {**GOOD, "Content-Type": "text/plain"}, 415, "content_type"),
        (
            JPEG,
            {**GOOD, "Content-Type": "application/x-www-form-urlencoded"},
            400,
            "missing_camera",
        ),
        (JPEG, {k: v for k, v in GOOD.items() if k != "Content-Type"}, 415, "content_type"),
        (JPEG, {k: v for k, v in GOOD.items() if k != "X-Framewire-Camera"}, 400, "missing_camera"),
        (JPEG, {**GOOD, "X-Framewire-Camera": "a/b"}, 400, "bad_camera"),
        (JPEG, {k: v for k, v in GOOD.items() if k != "X-Framewire-Seq"}, 400, "missing_seq"),
        (JPEG, {**GOOD, "X-Framewire-Seq": "twelve"}, 400, "bad_seq"),
        (JPEG, {**GOOD, "X-Framewire-Captured-Ns": "-5"}, 400, "bad_captured_ns"),
        (make_jpeg(640, 480, quality=100) * 3, GOOD, 413, "too_large"),
    ],
)
def test_bad_input_gets_4xx_with_reason(
    receiver: Service, body: bytes, headers: dict[str, str], status: int, reason: str
) -> None:
    before = scrape(
        receiver.url, "framewire_frames_rejected_total", transport="http", reason=reason
    )
    if headers.get(http_wire.HEADER_CAPTURED_NS) == GOOD[http_wire.HEADER_CAPTURED_NS]:
        headers = {**headers, http_wire.HEADER_CAPTURED_NS: str(time.time_ns())}  # in the window
    response = post(receiver.url, body, headers)
    assert response.status_code == status, response.text
    assert response.json()["error"] == reason
    assert response.json()["detail"]
    after = scrape(receiver.url, "framewire_frames_rejected_total", transport="http", reason=reason)
    assert after == before + 1
    # ...and the receiver keeps serving.
    assert requests.get(f"{receiver.url}/healthz", timeout=5).ok
    good = Frame("cam0", 2, time.time_ns(), JPEG)
    assert post(receiver.url, JPEG, http_wire.headers(good)).status_code == 204


def test_chunked_body_over_the_cap_is_refused(receiver: Service) -> None:
    big = make_jpeg(640, 480, quality=100) * 3

    def chunks():
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    response = requests.post(f"{receiver.url}/frames", data=chunks(), headers=GOOD, timeout=10)
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


def test_unknown_camera_routes_are_404_and_create_nothing(receiver: Service) -> None:
    assert requests.get(f"{receiver.url}/snapshot/..%2f.jpg", timeout=5).status_code == 404
    for path in ("/snapshot/never-seen.jpg", "/stream/never-seen.mjpg"):
        response = requests.get(f"{receiver.url}{path}", timeout=5)
        assert response.status_code == 404
        assert response.json()["error"] == "unknown_camera"
    assert "never-seen" not in requests.get(f"{receiver.url}/stats", timeout=5).json()["cameras"]
