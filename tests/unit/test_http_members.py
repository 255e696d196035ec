"""The HTTP receivers' membership in process: /owned, the members a round of probes finds,
and the gauges of members and owned cameras."""

from __future__ import annotations

import time

from flask.testing import FlaskClient

import framewire.transports.http_members as members
from conftest import wait_until
from framewire.frame import Frame
from framewire.metrics import ReceiverMetrics
from framewire.owners import Member, Owners
from framewire.transports import http as wire
from framewire.transports.http_members import Peers, peer_url
from helpers import make_jpeg

ME = "http://10.0.0.1:8001"


def test_owned_names_the_cameras_with_a_live_channel(client: FlaskClient) -> None:
    for camera in ("cam1", "cam0"):
        frame = Frame(camera, 1, time.time_ns(), make_jpeg(64, 48))
        answer = client.post("/frames", data=frame.jpeg, headers=wire.headers(frame))
        assert answer.status_code == 204, answer.json
    wait_until(
        lambda: client.get("/owned").json == {"key": None, "cameras": ["cam0", "cam1"]},
        what="both cameras live in /owned (alone: no key)",
    )


def sample(metrics: ReceiverMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_round_makes_the_answering_replicas_members_and_sets_the_gauges() -> None:
    owners = Owners(Member.at(ME))
    metrics = ReceiverMetrics()
    peers = Peers("peers.example", owners, metrics, "http")
    answers = {
        ME: Member.at(ME, ["cam0", "cam3"]),
        "http://10.0.0.2:8001": Member.at("http://10.0.0.2:8001", ["cam1", "cam2"]),
    }
    peers.ask = answers.get  # type: ignore[method-assign]  # 10.0.0.3 does not answer
    addresses = ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    resolve = members.resolve
    members.resolve = lambda host, port: addresses  # type: ignore[assignment]
    try:
        peers.refresh()
    finally:
        members.resolve = resolve  # type: ignore[assignment]
    assert [m.key for m in owners.members()] == ["10.0.0.1:8001", "10.0.0.2:8001"]
    assert sample(metrics, "framewire_replica_members", transport="http") == 2
    for camera in ("cam0", "cam1", "cam2", "cam3"):
        owned = sample(metrics, "framewire_camera_owned", transport="http", camera=camera)
        assert owned == (1.0 if owners.mine(camera) else 0.0), camera
    # A failed resolve keeps the members known.
    peers.name = "nothing.invalid"
    peers.refresh()
    assert len(owners.members()) == 2


def test_peer_urls_take_the_advertised_scheme_and_port() -> None:
    assert peer_url("http://10.0.0.1:8001", "10.0.0.9") == "http://10.0.0.9:8001"
    assert peer_url("https://10.0.0.1:8443/", "fd00::2") == "https://[fd00::2]:8443"
    assert peer_url("http://pod.example", "10.0.0.9") == "http://10.0.0.9"
