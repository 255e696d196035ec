"""Relaying a camera another replica owns (relay.py), in process: the choice of source, the
parts read and framed again byte for byte, a stream that goes on from the next source, and
the routes and /stats of a replica whose owners include one that cannot be reached."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
from flask import Flask

from conftest import wait_until
from framewire import mjpeg, relay
from framewire.app import create_app
from framewire.config import ReceiverConfig
from framewire.hub import Hub
from framewire.metrics import ReceiverMetrics
from framewire.mjpeg import PartReader, reframe
from framewire.owners import Member, owner_key
from framewire.relay import Relay, relays
from framewire.relay_tiles import tile_width
from framewire.variants import Variant
from helpers import make_jpeg

ME = "http://127.0.0.1:1"  # nothing listens on port 1 or 9: an owner there is unreachable
OTHER = "http://127.0.0.1:9"


def test_a_camera_is_relayed_only_from_another_owner_and_never_twice() -> None:
    # (relayed, shared, fresh here, owner, me) -> relayed to the owner?
    assert relays(False, True, False, "b:1", "a:1")
    assert not relays(True, True, False, "b:1", "a:1")  # a relayed request: never again
    assert not relays(False, False, False, "b:1", None)  # alone
    assert not relays(False, True, True, "b:1", "a:1")  # a fresh frame here: served here
    assert not relays(False, True, False, "a:1", "a:1")  # mine
    assert not relays(False, True, False, None, "a:1")


def test_a_tile_reads_the_narrowest_variant_as_wide_as_it() -> None:
    assert [tile_width(w) for w in (100, 320, 426, 640, 1280, 1281)] == [
        320,
        320,
        640,
        640,
        1280,
        None,
    ]


def owner_stream(count: int) -> tuple[bytes, list[bytes]]:
    """An owner's stream as mjpeg frames it: the opening boundary, then parts (one no signal)."""
    parts = [
        mjpeg.part(make_jpeg(64, 48, seed=i), i + 1, 1_000_000 + i) if i != 2 else mjpeg.part(b"x")
        for i in range(count)
    ]
    return b"--" + mjpeg.BOUNDARY + b"\r\n" + b"".join(parts), parts


@pytest.mark.parametrize("size", [1, 7, 100, 1 << 16])
def test_parts_read_in_any_chunks_are_framed_again_byte_for_byte(size: int) -> None:
    data, parts = owner_stream(5)
    reader, found = PartReader(), []
    for at in range(0, len(data), size):
        found += [reframe(h, b) for h, b in reader.feed(data[at : at + size])]
    assert found == parts


def test_a_part_without_its_length_ends_at_the_boundary_and_caps_hold() -> None:
    reader = PartReader()
    stream = b"--%s\r\nContent-Type: image/jpeg\r\n\r\nabc\r\n--%s\r\n" % (
        mjpeg.BOUNDARY,
        mjpeg.BOUNDARY,
    )
    assert reader.feed(stream) == [({"content-type": "image/jpeg"}, b"abc")]
    with pytest.raises(ValueError, match="headers too long"):
        PartReader().feed(b"--" + mjpeg.BOUNDARY + b"\r\n" + b"x" * (mjpeg.MAX_HEADERS + 1))
    with pytest.raises(ValueError, match="too large"):
        PartReader().feed(
            b"--%s\r\nContent-Length: %d\r\n\r\n" % (mjpeg.BOUNDARY, mjpeg.MAX_PART + 1)
        )


def publish(hub: Hub, camera: str, seq: int) -> None:
    image = np.full((48, 64, 3), seq * 10 % 256, np.uint8)
    hub.add(camera).publish(image, seq, time.time_ns())


@pytest.fixture
def hub() -> Iterator[Hub]:
    hub = Hub(ReceiverMetrics(), ReceiverConfig(transport="http", keepalive=0.05))
    yield hub
    hub.close()


def test_a_stream_waits_for_a_source_resending_its_last_part_then_goes_on(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(hub, "cam0", 1)
    channel = hub.find("cam0")
    assert channel is not None
    where: dict[str, object] = {"source": channel}
    follow = Relay(hub.owners, lambda _camera: where["source"], 0.05, 4)  # type: ignore[arg-type]
    monkeypatch.setattr(relay, "RETRY_SECONDS", 0.01)
    parts = follow.follow("cam0", Variant(), "", None, channel)
    assert next(parts) == b"--" + mjpeg.BOUNDARY + b"\r\n"
    first = next(parts)
    assert b"X-Framewire-Seq: 1\r\n" in first
    assert channel.figures.viewers == 1  # watched while served from here
    where["source"] = None  # the camera is nowhere for a while: the last part, as keepalive
    assert next(parts) == first  # (the part that showed the camera moved)
    assert [next(parts) for _ in range(3)] == [first] * 3
    assert channel.figures.viewers == 0  # no longer watched here
    where["source"] = channel  # served here again: on with its newer frames
    publish(hub, "cam0", 2)
    assert any(b"X-Framewire-Seq: 2\r\n" in next(parts) for _ in range(5))
    parts.close()  # the client left
    assert channel.figures.viewers == 0


def test_a_stream_with_no_source_for_long_ends_and_so_does_every_one_at_shutdown(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(hub, "cam0", 1)
    channel = hub.find("cam0")
    assert channel is not None
    monkeypatch.setattr(relay, "RESUME_SECONDS", 0.2)
    gone = Relay(hub.owners, lambda _camera: None, 0.05, 4)
    started = time.monotonic()
    assert len(list(gone.follow("cam0", Variant(), "", None, channel))) >= 2
    assert time.monotonic() - started < 2
    stopping = Relay(hub.owners, lambda _camera: None, 0.05, 4)
    monkeypatch.setattr(relay, "RESUME_SECONDS", 60)
    parts = stopping.follow("cam0", Variant(), "", None, channel)
    next(parts)
    stopping.close()
    assert len(list(parts)) <= 2


def remote_camera(owned_by: str, among: list[str]) -> str:
    keys = {Member.at(url).key: url for url in among}
    return next(f"cam{i}" for i in range(100) if keys[str(owner_key(f"cam{i}", keys))] == owned_by)


@pytest.fixture
def shared() -> Iterator[Flask]:
    """A replica (advertised at ME) whose owners include another at OTHER that cannot be
    reached, reporting one camera it owns."""
    app = create_app(
        ReceiverConfig(transport="http", stale_after=30.0, advertise_url=ME, max_cameras=8)
    )
    yield app
    app.extensions["framewire.shutdown"]()


def hub_of(app: Flask) -> Hub:
    return app.extensions["framewire.hub"]


def test_a_replica_relays_what_it_does_not_own_and_answers_a_relayed_request_itself(
    shared: Flask,
) -> None:
    hub = hub_of(shared)
    theirs = remote_camera(OTHER, [ME, OTHER])
    mine = remote_camera(ME, [ME, OTHER])
    hub.owners.update([Member.at(OTHER, [theirs])])
    client = shared.test_client()
    stats = client.get("/stats").json
    assert stats["me"] == "127.0.0.1:1"
    assert [m["key"] for m in stats["members"]] == ["127.0.0.1:1", "127.0.0.1:9"]
    assert stats["cameras"][theirs]["owner"] == "127.0.0.1:9"
    assert stats["cameras"][theirs]["state"] == "owner unreachable"
    assert stats["default_camera"] == theirs  # known from its owner's report
    # Relayed, and the owner cannot be reached: a 503 naming it.
    for path in (f"/snapshot/{theirs}.jpg", f"/stream/{theirs}.mjpg", "/snapshot.jpg"):
        answer = client.get(path)
        assert (answer.status_code, answer.json["error"]) == (503, "owner_unreachable"), path
        assert "127.0.0.1:9" in answer.json["detail"]
    # Asked by another replica: answered from this one's hub, never relayed again.
    answer = client.get(f"/snapshot/{theirs}.jpg", headers={relay.RELAY_HEADER: "1"})
    assert (answer.status_code, answer.json["error"]) == (404, "unknown_camera")
    assert theirs not in client.get("/stats", headers={relay.RELAY_HEADER: "1"}).json["cameras"]
    # A bad variant is refused here, before any owner is asked.
    assert client.get(f"/stream/{theirs}.mjpg?width=7").status_code == 400
    # A camera it owns, or holds a fresh frame of, is served here.
    publish(hub, mine, 1)
    publish(hub, theirs, 1)
    for camera in (mine, theirs):
        assert client.get(f"/snapshot/{camera}.jpg").headers["X-Framewire-Seq"] == "1"
        with client.get(f"/stream/{camera}.mjpg", buffered=False) as stream:
            chunks = iter(stream.response)
            next(chunks)
            assert b"X-Framewire-Seq: 1\r\n" in next(chunks)
    stats = client.get("/stats").json["cameras"]
    assert stats[mine]["owner"] == "127.0.0.1:1" and stats[mine]["state"] == "live"
    assert stats[theirs]["owner"] == "127.0.0.1:9" and stats[theirs]["state"] == "live"
    wait_until(lambda: hub.seats.taken == 0, what="the streams' seats given back")
