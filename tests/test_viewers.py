"""Many and slow MJPEG viewers: ingest keeps its rate and latency, memory stays bounded."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import requests

from conftest import RedisServer, Service, Services, metric_value, scrape, wait_until

FAST, SLOW = 20, 3
CAP = FAST + SLOW


def worker_rss_kib(receiver: Service) -> int:
    """Resident memory of the receiver's gunicorn worker (the master's child)."""
    pid = receiver.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    status = Path(f"/proc/{children[0]}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))


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


class Viewer(threading.Thread):
    """An MJPEG client reading 64 KiB at a time, `fps` times a second (0: as fast as it can)."""

    def __init__(self, url: str, fps: float = 0) -> None:
        super().__init__(daemon=True)
        self.response = requests.get(url, stream=True, timeout=30)
        boundary = self.response.headers["Content-Type"].split("boundary=")[1]
        self.boundary = b"--" + boundary.encode()
        self.fps = fps
        self.parts = 0  # boundaries seen: one per part received
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            for chunk in self.response.iter_content(chunk_size=65536):
                self.parts += chunk.count(self.boundary)
                if self.stopped.is_set():
                    return
                if self.fps:
                    self.stopped.wait(1 / self.fps)
        except (requests.RequestException, AttributeError, ValueError):
            pass  # closed under us at the end of the test

    def close(self) -> None:
        self.stopped.set()
        self.response.close()


def test_many_and_slow_viewers(services: Services, redis_server: RedisServer) -> None:
    http = services.receiver("http", "--max-viewers", str(CAP), "--threads", "32")
    services.sender(
        "--http-url", f"{http.url}/frames", "--redis-url", "", "--width", "640", "--height", "360"
    )
    wait_until(lambda: ingest(http)[0] > 30, what="frames flowing")
    viewers_gauge = lambda: scrape(http.url, "framewire_viewers", camera="cam0", transport="http")  # noqa: E731
    base_fps, base_latency = measure(http)
    base_rss = worker_rss_kib(http)

    viewers = [Viewer(f"{http.url}/stream.mjpg") for _ in range(FAST)]
    viewers += [Viewer(f"{http.url}/stream.mjpg", fps=1) for _ in range(SLOW)]
    for viewer in viewers:
        viewer.start()
    wait_until(lambda: viewers_gauge() == FAST + SLOW, what="all viewers connected")
    wait_until(lambda: all(v.parts >= 2 for v in viewers), what="every viewer receiving")
    load_fps, load_latency = measure(http, seconds=5)
    rss_samples = [worker_rss_kib(http)]
    load_fps2, _ = measure(http, seconds=3)
    rss_samples.append(worker_rss_kib(http))
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
