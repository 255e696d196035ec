"""Redis and HTTP-receiver outages: the other path keeps its rate; both recover by themselves."""

from __future__ import annotations

import time

import requests

from conftest import RedisServer, Service, Services, scrape, wait_until


def received(receiver: Service, transport: str) -> float:
    return scrape(
        receiver.url, "framewire_frames_received_total", camera="cam0", transport=transport
    )


def rate(receiver: Service, transport: str, seconds: float = 3.0) -> float:
    """Frames per second the receiver took over the next `seconds`."""
    before, started = received(receiver, transport), time.monotonic()
    wait_until(
        lambda: time.monotonic() - started >= seconds,
        interval=0.1,
        timeout=seconds + 1,
        what="measurement window",
    )
    return (received(receiver, transport) - before) / (time.monotonic() - started)


def flowing(receiver: Service, transport: str) -> bool:
    before = received(receiver, transport)
    return bool(
        wait_until(
            lambda: received(receiver, transport) > before + 5,
            timeout=5,
            what=f"{transport} frames",
        )
    )


def test_redis_outage_leaves_http_flowing_and_recovers(
    services: Services, redis_server: RedisServer
) -> None:
    http, red, sender = services.stack(redis_server)
    assert flowing(http, "http") and flowing(red, "redis")
    baseline = rate(http, "http")

    redis_server.stop()
    wait_until(lambda: "redis transport down" in sender.log(), what="sender to notice")
    during = rate(http, "http")
    print(f"HTTP fps before {baseline:.1f}, during the Redis outage {during:.1f}")
    assert during >= 0.9 * baseline
    assert red.proc.poll() is None and requests.get(f"{red.url}/healthz", timeout=5).ok

    redis_server.start()
    back = time.monotonic()
    wait_until(lambda: flowing(red, "redis"), timeout=5, what="Redis path back within 5 s")
    print(f"Redis path recovered {time.monotonic() - back:.2f} s after redis-server returned")
    # One log line per state change on both Redis sides, not one per frame or retry.
    assert sender.log().count("redis transport down") == 1
    assert sender.log().count("redis transport up") == 2
    assert red.log().count("redis down") == 1
    assert red.log().count("redis up") == 2
    assert (
        scrape(
            sender.url,
            "framewire_send_errors_total",
            camera="cam0",
            transport="redis",
            reason="connect",
        )
        >= 1
    )
    assert (
        scrape(red.url, "framewire_receive_errors_total", transport="redis", reason="connect") >= 1
    )


def test_http_receiver_outage_leaves_redis_flowing_and_recovers(
    services: Services, redis_server: RedisServer
) -> None:
    http, red, sender = services.stack(redis_server)
    assert flowing(http, "http") and flowing(red, "redis")
    baseline = rate(red, "redis")

    port = int(http.url.rsplit(":", 1)[1])
    http.stop()
    wait_until(lambda: "http transport down" in sender.log(), what="sender to notice")
    during = rate(red, "redis")
    print(f"Redis fps before {baseline:.1f}, during the HTTP receiver outage {during:.1f}")
    assert during >= 0.9 * baseline

    http = services.receiver("http", port=port)
    back = time.monotonic()
    wait_until(lambda: flowing(http, "http"), timeout=5, what="HTTP path back")
    print(f"HTTP path recovered {time.monotonic() - back:.2f} s after the receiver returned")
    assert sender.log().count("http transport down") == 1
    dropped = "framewire_frames_dropped_total"
    assert scrape(sender.url, dropped, camera="cam0", transport="http", stage="send") > 0
