"""Many and slow MJPEG viewers: ingest keeps its rate and latency, memory stays bounded."""

from __future__ import annotations

import time

import requests

from conftest import RedisServer, Service, Services, metric_value, scrape, wait_until
from helpers import Viewer

FAST, SLOW = 20, 3
CAP = FAST + SLOW


def ingest(receiver: Service) -> tuple[float, float]:
    """(frames received, sum of capture-to-received seconds) so far."""
    text = requests.get(f"{receiver.url}/metrics", timeout=5).text
    labels = {"camera": "cam0", "transport": "http"}
    return (
        metric_value(text, "framewire_frames_received_total", **labels),
        metric_value(text, "framewire_frame_latency_seconds_sum", stage="received", **labels),
    )


def measure(receiver: Service, seconds: float = 3.0) -> tuple[float, float]:
    """Ingest fps and mean capture-to-received latency (ms) over the next `seconds`."""
    (n0, s0), started = ingest(receiver), time.monotonic()
    wait_until(
        lambda: time.monotonic() - started >= seconds,
        interval=0.1,
        timeout=seconds + 1,
        what="measurement window",
    )
    n1, s1 = ingest(receiver)
    return (n1 - n0) / (time.monotonic() - started), (s1 - s0) / max(n1 - n0, 1) * 1000


def test_many_and_slow_viewers(services: Services, redis_server: RedisServer) -> None:
    http = services.receiver("http", "--max-viewers", str(CAP), "--threads", "32")
    services.sender(
        "--http-url", f"{http.url}/frames", "--redis-url", "", "--width", "640", "--height", "360"
    )
    wait_until(lambda: ingest(http)[0] > 30, what="frames flowing")
    viewers_gauge = lambda: scrape(http.url, "framewire_viewers", camera="cam0", transport="http")  # noqa: E731
    base_fps, base_latency = measure(http)
    base_rss = http.rss_kib()

    viewers = [Viewer(f"{http.url}/stream.mjpg") for _ in range(FAST)]
    viewers += [Viewer(f"{http.url}/stream.mjpg", fps=1) for _ in range(SLOW)]
    for viewer in viewers:
        viewer.start()
    wait_until(lambda: viewers_gauge() == FAST + SLOW, what="all viewers connected")
    wait_until(lambda: all(v.parts >= 2 for v in viewers), what="every viewer receiving")
    load_fps, load_latency = measure(http, seconds=5)
    rss_samples = [http.rss_kib()]
    load_fps2, _ = measure(http, seconds=3)
    rss_samples.append(http.rss_kib())
    print(
        f"ingest {base_fps:.1f} fps / {base_latency:.2f} ms alone; with {FAST} fast and "
        f"{SLOW} slow viewers {load_fps:.1f} fps / {load_latency:.2f} ms; worker RSS "
        f"{base_rss // 1024} MiB -> {[r // 1024 for r in rss_samples]} MiB"
    )
    assert load_fps >= 0.9 * base_fps and load_fps2 >= 0.9 * base_fps
    assert load_latency <= base_latency + 10
    assert rss_samples[-1] <= base_rss + 150 * 1024, "worker memory grew by over 150 MiB"
    assert rss_samples[-1] <= rss_samples[0] + 30 * 1024, "worker memory keeps growing"
    fast_parts = [v.parts for v in viewers[:FAST]]
    slow_parts = [v.parts for v in viewers[FAST:]]
    assert min(fast_parts) > max(slow_parts), "slow viewers skip frames, fast ones do not wait"

    # One more than the cap is refused, clearly.
    with requests.get(f"{http.url}/stream.mjpg", stream=True, timeout=10) as refused:
        assert refused.status_code == 503 and refused.json()["error"] == "viewer_limit"

    # A client that leaves frees its thread within a second.
    viewers[0].close()
    left = time.monotonic()
    wait_until(
        lambda: viewers_gauge() == FAST + SLOW - 1,
        timeout=1.0,
        interval=0.02,
        what="viewer gauge to drop within 1 s of a disconnect",
    )
    print(f"a disconnect was noticed in {time.monotonic() - left:.2f} s")
    for viewer in viewers:
        viewer.close()
    wait_until(lambda: viewers_gauge() == 0, timeout=5, what="all viewer threads freed")
