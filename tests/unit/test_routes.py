"""Every route of the receiver app in-process (Flask's test client), with real JPEGs."""

from __future__ import annotations

import threading
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from conftest import metric_value, wait_until
from framewire.app import create_app
from framewire.config import ReceiverConfig
from framewire.frame import Frame
from framewire.transports import http as http_wire
from framewire.viewer import is_peer
from helpers import claiming, decode, ends_at_shutdown, make_jpeg

JPEG = make_jpeg(320, 240, seed=7)


def post(client: FlaskClient, camera: str, seq: int, jpeg: bytes = JPEG):
    return client.post(
        "/frames", data=jpeg, headers=http_wire.headers(Frame(camera, seq, time.time_ns(), jpeg))
    )


def served(client: FlaskClient, camera: str, seq: int) -> None:
    wait_until(
        lambda: client.get(f"/snapshot/{camera}.jpg").headers.get("X-Framewire-Seq") == str(seq),
        what=f"frame {seq} of {camera} served",
    )


def test_errors_are_json(client: FlaskClient) -> None:
    cases = [
        ("GET", "/nowhere", 404, "not_found"),
        ("POST", "/stats", 405, "method_not_allowed"),
        ("GET", "/frames", 405, "method_not_allowed"),
        ("GET", "/stream/ghost.mjpg", 404, "unknown_camera"),
        ("GET", "/snapshot/ghost.jpg", 404, "unknown_camera"),
        ("GET", "/readyz?camera=ghost", 404, "unknown_camera"),
        ("GET", "/readyz?camera=a%2Fb", 404, "bad_camera"),
    ]
    for method, path, status, reason in cases:
        response = client.open(path, method=method)
        assert response.status_code == status, (path, response.data)
        assert response.json["error"] == reason and response.json["detail"], path


def test_metrics_has_one_charset(client: FlaskClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].count("charset") == 1


def test_no_camera_exists_before_a_frame(client: FlaskClient) -> None:
    """No phantom camera: the bare routes mean the first camera that exists, none before."""
    stats = client.get("/stats").json
    assert stats["cameras"] == {} and stats["default_camera"] is None
    for path in ("/snapshot.jpg", "/stream.mjpg", "/latencies"):
        response = client.get(path)
        assert response.status_code == 404 and response.json["error"] == "no_camera", path
    assert client.get("/readyz").status_code == 503
    page = client.get("/")
    assert page.status_code == 200 and b"stream/cam0" not in page.data

    assert post(client, "door", 1).status_code == 204
    served(client, "door", 1)
    assert client.get("/snapshot.jpg").headers["X-Framewire-Seq"] == "1"
    assert client.get("/stats").json["default_camera"] == "door"
    assert b'data-src="stream/door.mjpg"' in client.get("/").data
    assert post(client, "attic", 5).status_code == 204  # the first by id, on every replica
    served(client, "attic", 5)
    assert client.get("/snapshot.jpg").headers["X-Framewire-Seq"] == "5"
    assert list(client.get("/stats").json["cameras"]) == ["attic", "door"]


def test_a_declared_default_camera_is_known_from_start() -> None:
    app = create_app(ReceiverConfig(default_camera="door"))
    try:
        client = app.test_client()
        assert list(client.get("/stats").json["cameras"]) == ["door"]
        response = client.get("/snapshot.jpg")
        assert response.status_code == 503 and "X-Framewire-Seq" not in response.headers
        assert decode(response.data).shape == (360, 640, 3)  # the "no signal" picture
        assert client.get("/readyz").status_code == 503
        assert post(client, "attic", 1).status_code == 204
        served(client, "attic", 1)
        assert client.get("/stats").json["default_camera"] == "door"  # declared wins
    finally:
        app.extensions["framewire.shutdown"]()


def test_posted_frame_is_served_everywhere(client: FlaskClient) -> None:
    assert post(client, "cam1", 42).status_code == 204
    served(client, "cam1", 42)
    snapshot = client.get("/snapshot/cam1.jpg")
    assert decode(snapshot.data).shape == (240, 320, 3)
    assert sorted(client.get("/stats").json["cameras"]) == ["cam1"]
    ready = client.get("/readyz?camera=cam1")
    assert ready.status_code == 200 and ready.json["ready"]
    assert client.get("/readyz").status_code == 200
    assert client.get("/").status_code == 200


def headers(**changes: str | None) -> dict[str, str]:
    """A good frame's headers, captured now, with `changes` (None removes a header)."""
    good = http_wire.headers(Frame("cam0", 1, time.time_ns(), JPEG))
    return {k: v for k, v in {**good, **changes}.items() if v is not None}


@pytest.mark.parametrize(
    ("body", "changes", "status", "reason"),
    [
        # Decided by the parser (tests/unit/test_frame.py holds each reason): one per status.
        (JPEG, {"X-Framewire-Camera": None}, 400, "missing_camera"),
        (b"GIF89a....", {}, 422, "not_jpeg"),
        # Decided past the parser: the route, the decoder, the pixel limit.
        (JPEG, {"Content-Type": "text/plain"}, 415, "content_type"),
        (JPEG, {"Content-Type": None}, 415, "content_type"),
        (JPEG, {"Content-Type": http_wire.FORM_TYPE}, 400, "missing_camera"),  # read as a form
        (b"\xff\xd8" + b"\x00" * 500 + b"\xff\xd9", {}, 422, "undecodable"),
        (claiming(JPEG, 65000, 65000), {}, 422, "too_many_pixels"),
    ],
)
def test_a_refusal_is_its_status_and_json_reason_counted(
    client: FlaskClient, body: bytes, changes: dict[str, str | None], status: int, reason: str
) -> None:
    """Over real gunicorn, tests/system/test_hostile_input.py refuses what only the worker can
    (bodies over the cap, broken chunks)."""

    def rejected() -> float:
        text = client.get("/metrics").text
        name = "framewire_frames_rejected_total"
        return metric_value(text, name, transport="http", reason=reason)

    before = rejected()
    response = client.post("/frames", data=body, headers=headers(**changes))
    assert response.status_code == status, response.data
    assert response.json["error"] == reason and response.json["detail"]
    assert rejected() == before + 1
    assert post(client, "cam0", 2).status_code == 204  # and the receiver takes the next frame


def test_refused_frames_leave_no_camera(
    client: FlaskClient, capfd: pytest.CaptureFixture[str]
) -> None:
    """The HTTP side; tests/unit/test_hub.py holds the pipeline both transports feed."""
    bodies = {
        "undecodable": JPEG[: len(JPEG) // 2] + b"\xff\xd9",  # cut short, EOI re-added
        "too_many_pixels": claiming(JPEG, 7680, 4320),
        "implausible_size": claiming(make_jpeg(16, 16), 1920, 1080),  # 666 bytes
    }
    for n, (reason, body) in enumerate(bodies.items()):
        response = post(client, f"ghost{n}", 1, body)
        assert response.status_code // 100 == 4 and response.json["error"] == reason
    assert list(client.get("/stats").json["cameras"]) == []
    assert "ghost" not in client.get("/metrics").text
    assert client.get("/snapshot/ghost0.jpg").status_code == 404
    assert client.get("/readyz?camera=ghost0").json["error"] == "unknown_camera"
    assert "Corrupt JPEG data" not in capfd.readouterr().err  # libjpeg's warning stays off stderr


def test_stream_counts_its_viewer_and_ends_at_shutdown(app: Flask, client: FlaskClient) -> None:
    post(client, "cam0", 1)
    served(client, "cam0", 1)

    def viewers() -> float:
        text = client.get("/metrics").text
        return metric_value(text, "framewire_viewers", camera="cam0", transport="http")

    response = client.get("/stream.mjpg")
    assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
    parts = iter(response.response)
    assert next(parts).startswith(b"--framewireframe")
    assert next(parts).startswith(b"Content-Type: image/jpeg")
    assert viewers() == 1
    response.close()
    assert viewers() == 0
    unread = client.get("/stream.mjpg")  # a client that leaves before reading a byte
    unread.close()
    assert viewers() == 0

    response = client.get("/stream.mjpg")
    parts = iter(response.response)
    next(parts)
    assert ends_at_shutdown(app, parts), "the stream did not end at shutdown"
    response.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("framewire-process")]


def test_viewer_limit_is_json() -> None:
    capped = create_app(ReceiverConfig(max_viewers=1, default_camera="cam0")).test_client()
    try:
        first = capped.get("/stream.mjpg")
        second = capped.get("/stream.mjpg")
        assert second.status_code == 503 and second.json["error"] == "viewer_limit"
        first.close()
    finally:
        capped.application.extensions["framewire.shutdown"]()


def test_internal_error_is_json() -> None:
    app = create_app(ReceiverConfig())
    try:
        app.add_url_rule("/boom", "boom", lambda: 1 / 0)
        response = app.test_client().get("/boom")
        assert response.status_code == 500
        assert response.json["error"] == "internal_server_error" and response.json["detail"]
    finally:
        app.extensions["framewire.shutdown"]()


def test_only_the_peer_may_read_a_stream_cross_origin() -> None:
    """Streams carry camera pixels: Access-Control-Allow-Origin only for the peer's page."""
    assert is_peer("http://cams.example:8001", "", 8001)
    assert is_peer("http://[::1]:8001", "", 8001)
    assert not is_peer("http://evil.example", "", 8001)  # port 80
    assert not is_peer("http://cams.example:8001", "", 0)
    assert is_peer("https://proxy.example", "https://proxy.example/http/", 8001)
    assert not is_peer("http://cams.example:8001", "https://proxy.example/http/", 8001)
    assert not is_peer("null", "", 8001) and not is_peer("", "", 8001)
    assert not is_peer("http://h:99999", "", 8001)


def test_a_page_compares_only_with_a_transport_in_use() -> None:
    """FRAMEWIRE_TRANSPORTS=http: the HTTP receiver's page shows no Redis peer."""
    for transports, peer in (("http,redis", True), ("http", False)):
        app = create_app(ReceiverConfig(transports=transports))
        try:
            page = app.test_client().get("/").data
            assert (b'data-side="peer"' in page) == peer, transports
        finally:
            app.extensions["framewire.shutdown"]()
