"""Each frame's own latency: the bounded log behind /latencies, the route, exact quantiles."""

from __future__ import annotations

import time

import pytest
from flask.testing import FlaskClient

from conftest import wait_until
from framewire.frame import Frame
from framewire.metrics import LatencyLog
from framewire.transports import http as http_wire
from framewire_bench import latency
from helpers import make_jpeg

JPEG = make_jpeg(320, 240, seed=3)


# --- the log ------------------------------------------------------------------------------------


def test_log_returns_frames_from_an_index_on() -> None:
    log = LatencyLog(capacity=4)
    assert log.since(0) == {
        "capacity": 4,
        "first": 0,
        "next": 0,
        "lost": 0,
        "captured_ns": [],
        "seconds": [],
    }
    for n in range(3):
        log.add(1000 + n, n / 1000)
    held = log.since(1)
    assert (held["captured_ns"], held["seconds"]) == ([1001, 1002], [0.001, 0.002])
    assert (held["next"], held["lost"]) == (3, 0)
    assert log.since(99)["captured_ns"] == []  # nothing yet from there on


def test_log_keeps_the_newest_and_counts_what_it_lost() -> None:
    log = LatencyLog(capacity=4)
    for n in range(10):
        log.add(1000 + n, n / 1000)
    held = log.since(0)
    assert held["captured_ns"] == [1006, 1007, 1008, 1009]
    assert (held["first"], held["next"], held["lost"]) == (6, 10, 6)
    assert log.since(7)["lost"] == 0
    assert log.since(7)["captured_ns"] == [1007, 1008, 1009]


# --- the route ----------------------------------------------------------------------------------


def post(client: FlaskClient, camera: str, seq: int, captured_ns: int) -> None:
    frame = Frame(camera, seq, captured_ns, JPEG)
    response = client.post("/frames", data=JPEG, headers=http_wire.headers(frame))
    assert response.status_code == 204, response.data


def test_route_returns_each_frames_own_latency(client: FlaskClient) -> None:
    captured = [time.time_ns() - 5_000_000 * k for k in (3, 2, 1)]
    for seq, ns in enumerate(captured, 1):
        post(client, "cam1", seq, ns)
    body = client.get("/latencies?camera=cam1&stage=received").json
    assert body["camera"] == "cam1" and body["transport"] == "http"
    assert body["captured_ns"] == captured
    assert len(body["seconds"]) == 3 and all(s > 0 for s in body["seconds"])
    assert (body["next"], body["lost"], body["capacity"]) == (3, 0, 8192)
    later = client.get("/latencies?camera=cam1&stage=received&since=2").json
    assert later["captured_ns"] == captured[2:]

    assert client.get("/latencies?camera=cam1&stage=served").json["captured_ns"] == []
    wait_until(
        lambda: client.get("/snapshot/cam1.jpg").headers.get("X-Framewire-Seq") == "3",
        what="frame 3 served",
    )
    served = client.get("/latencies?camera=cam1&stage=served").json
    assert served["captured_ns"] == captured[2:]  # encoded once, when the snapshot asked


def test_route_errors_are_json(client: FlaskClient) -> None:
    # The default camera: none before a frame.
    assert client.get("/latencies").json["error"] == "no_camera"
    post(client, "cam0", 1, time.time_ns())
    cases = [
        ("/latencies?camera=ghost", 404, "unknown_camera"),
        ("/latencies?stage=sent", 400, "bad_stage"),
        ("/latencies?since=-1", 400, "bad_since"),
        ("/latencies?since=x", 400, "bad_since"),
    ]
    for path, status, reason in cases:
        response = client.get(path)
        assert response.status_code == status, (path, response.data)
        assert response.json["error"] == reason and response.json["detail"], path
    assert client.get("/latencies").json["camera"] == "cam0"  # the first camera that exists


# --- exact quantiles ----------------------------------------------------------------------------


def test_nearest_rank_quantiles_are_values_of_the_series() -> None:
    values = [float(v) for v in range(1, 101)]  # 1 .. 100, shuffled order must not matter
    values.reverse()
    assert latency.quantile(values, 0.5) == 50.0
    assert latency.quantile(values, 0.95) == 95.0
    assert latency.quantile(values, 0.99) == 99.0
    assert latency.quantile(values, 1.0) == 100.0
    assert latency.quantile([7.0], 0.99) == 7.0
    assert latency.quantile([1.0, 2.0, 3.0], 0.5) == 2.0  # ceil(1.5) = 2nd
    assert latency.quantile([], 0.5) is None
    with pytest.raises(ValueError):
        latency.quantile([1.0], 1.5)


def test_window_takes_frames_captured_inside_it() -> None:
    body = {
        "lost": 0,
        "first": 0,
        "captured_ns": [100, 200, 300, 400, 500],
        "seconds": [0.009, 0.001, 0.002, 0.003, 0.050],
    }
    figures = latency.window(body, start_ns=200, end_ns=400)
    assert figures == {
        "p50": 2.0,
        "p95": 3.0,
        "p99": 3.0,
        "frames": 3,
        "method": latency.METHOD,
        "overflow": False,
    }


def test_window_is_flagged_when_the_log_overflowed_inside_it() -> None:
    # The oldest frame still held was captured after the window began, and some were lost.
    body = {"lost": 40, "first": 40, "captured_ns": [300, 400], "seconds": [0.002, 0.003]}
    assert latency.window(body, start_ns=200, end_ns=400)["overflow"] is True
    # Lost frames all came before the window: complete.
    body = {"lost": 40, "first": 40, "captured_ns": [100, 300], "seconds": [0.002, 0.003]}
    assert latency.window(body, start_ns=200, end_ns=400)["overflow"] is False
    empty = latency.window({"lost": 0, "captured_ns": [], "seconds": []}, 0, 1)
    assert empty["p50"] is None and empty["frames"] == 0
