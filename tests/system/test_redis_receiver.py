"""The Redis side of the contract, against a real redis-server and a real redis-receiver."""

from __future__ import annotations

import time

import requests

from conftest import RedisServer, Services, scrape, wait_until
from framewire.frame import Frame
from framewire.transports import redis as redis_wire
from helpers import decode, make_jpeg


def snapshot_seq(url: str, camera: str) -> int | None:
    r = requests.get(f"{url}/snapshot/{camera}.jpg", timeout=5)
    return int(r.headers["X-Framewire-Seq"]) if r.status_code == 200 else None


def test_xadd_by_hand_is_received(services: Services, redis_server: RedisServer) -> None:
    receiver = services.receiver("redis", "--redis-url", redis_server.url)
    client = redis_server.client()
    jpeg = make_jpeg(320, 240, seed=3)
    # A producer in any language: XADD framewire:frames:<camera> with jpeg, seq, captured_ns.
    for seq in range(1, 4):
        client.xadd(
            redis_wire.key("stream", "door"),
            redis_wire.stream_fields(Frame("door", seq, time.time_ns(), jpeg)),
            maxlen=8,
            approximate=True,
        )

        # New streams are discovered within a couple of seconds; keep adding until seen.

    def seen() -> bool:
        client.xadd(
            redis_wire.key("stream", "door"),
            {"jpeg": jpeg, "seq": "99", "captured_ns": str(time.time_ns())},
        )
        return snapshot_seq(receiver.url, "door") == 99

    wait_until(seen, what="redis-receiver to show camera 'door'")
    served = requests.get(f"{receiver.url}/snapshot/door.jpg", timeout=5)
    assert decode(served.content).shape == (240, 320, 3)
    assert (
        scrape(receiver.url, "framewire_frames_received_total", camera="door", transport="redis")
        >= 1
    )


def test_malformed_entries_are_skipped_counted_and_logged_once(
    services: Services, redis_server: RedisServer
) -> None:
    receiver = services.receiver("redis", "--redis-url", redis_server.url)
    client = redis_server.client()
    key = redis_wire.key("stream", "cam0")
    jpeg = make_jpeg()

    def good(seq: int) -> None:
        client.xadd(
            key, redis_wire.stream_fields(Frame("cam0", seq, time.time_ns(), jpeg)), maxlen=8
        )

    good(1)
    wait_until(
        lambda: (good(1), snapshot_seq(receiver.url, "cam0") == 1)[1], what="first good frame"
    )
    bad = [
        {"jpeg": b"garbage", "seq": "2", "captured_ns": "1"},
        {"seq": "3", "captured_ns": "1"},
        {"jpeg": jpeg, "seq": "x", "captured_ns": "1"},
    ]
    reasons = ["not_jpeg", "missing_jpeg", "bad_seq"]

    def rejected() -> float:
        return sum(
            scrape(receiver.url, "framewire_frames_rejected_total", transport="redis", reason=r)
            for r in reasons
        )

    count = 0
    for _ in range(5):  # five of each: five counts, but one log line per reason
        for fields in bad:
            client.xadd(key, fields)
            count += 1
            # Wait until the receiver took it, so no entry is skipped as an older one.
            wait_until(lambda n=count: rejected() == n, timeout=5, what=f"{count} rejects")
    for reason in reasons:
        assert (
            scrape(
                receiver.url, "framewire_frames_rejected_total", transport="redis", reason=reason
            )
            == 5
        )
    good(50)
    wait_until(lambda: snapshot_seq(receiver.url, "cam0") == 50, what="good frame after bad ones")
    log = receiver.log()
    for reason in reasons:
        assert log.count(f"malformed frames ({reason})") == 1, log
