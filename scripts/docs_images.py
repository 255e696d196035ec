"""`make docs-images`: the documentation's pictures, made from the real thing.

docs/comparison.png: Debian's Chromium (through Playwright) screenshots the
page of a running stack at a fixed viewport: redis-server, both receivers
(each comparing with the other) and one sender with two synthetic cameras,
all on free loopback ports, stopped by their PIDs at the end.

docs/bench/chart.png: the bench chart, re-rendered from the checked-in
docs/bench/results.json (`framewire bench` writes the same chart into each
run's directory).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from framewire_bench.chart import write_chart
from framewire_bench.stack import (
    RedisServer,
    Services,
    StackError,
    free_ports,
    wait_until,
    write_cameras,
)

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "comparison.png"
RESULTS = ROOT / "docs" / "bench" / "results.json"
CHART = ROOT / "docs" / "bench" / "chart.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip
VIEWPORT = {"width": 1280, "height": 900}
# Two synthetic cameras at 640x360: four live streams in one headless Chromium on a small
# machine stay at their 30 fps (the page looks the same at any size).
CAMERAS = [
    {"id": "entrance", "source": "synthetic", "width": 640, "height": 360},
    {"id": "yard", "source": "synthetic", "width": 640, "height": 360},
]
WAIT_MS = 30_000
# The page shows its streams: every stream canvas has drawn a frame (or, on a page
# without canvases, every image has loaded), and the figures have had time to fill.
STREAMS_SHOWN = """() => {
  const canvases = [...document.querySelectorAll('canvas.stream')];
  if (canvases.length) return canvases.every(c => Number(c.dataset.frames) > 0);
  const images = [...document.querySelectorAll('img')];
  return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0);
}"""
SETTLE_MS = 6000


def live(url: str, cameras: list[str]) -> bool:
    """Every camera has a frame at the receiver (its snapshot answers)."""
    import requests

    return all(requests.get(f"{url}/snapshot/{c}.jpg", timeout=1).ok for c in cameras)


def screenshot(out: Path) -> None:
    """Start the stack, open its page in Chromium, save the screenshot, stop the stack."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium fonts-liberation")
    with tempfile.TemporaryDirectory(prefix="framewire-docs-images-") as tmp:
        logs = Path(tmp)
        redis = RedisServer(log_path=logs / "redis-server.log")
        services = Services(logs)
        try:
            redis.start()
            http_port, redis_port = free_ports(2)
            http = services.receiver("http", "--peer-port", str(redis_port), port=http_port)
            red = services.receiver(
                "redis", *redis.args, "--peer-port", str(http_port), port=redis_port
            )
            cameras_file = write_cameras(logs / "cameras.yaml", CAMERAS)
            services.sender(
                "--cameras-file", str(cameras_file), "--http-url", f"{http.url}/frames",
                *redis.args,
            )  # fmt: skip
            names = [c["id"] for c in CAMERAS]
            for receiver in (http, red):
                wait_until(
                    lambda r=receiver: live(r.url, names), what=f"cameras on {receiver.name}"
                )
            with sync_playwright() as pw:
                chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    page = chromium.new_page(viewport=VIEWPORT)
                    page.set_default_timeout(WAIT_MS)
                    page.goto(f"{http.url}/", wait_until="commit")  # MJPEG: never "loaded"
                    page.wait_for_function(STREAMS_SHOWN)
                    page.wait_for_timeout(SETTLE_MS)  # live fps and latency figures fill in
                    out.write_bytes(page.screenshot())
                finally:
                    chromium.close()
        except StackError as exc:
            raise SystemExit(f"make docs-images: {exc} (logs: {logs})") from exc
        finally:
            services.stop_all()
            redis.stop()


def chart(results: Path, out: Path) -> str:
    report = json.loads(results.read_text(encoding="utf-8"))
    return write_chart(out, report["results"], report.get("codec"))


def main() -> int:
    screenshot(SCREENSHOT)
    print(f"wrote {SCREENSHOT.relative_to(ROOT)}")
    made = chart(RESULTS, CHART)
    if made.startswith("skipped"):
        print(f"make docs-images: chart {made}", file=sys.stderr)
        return 1
    print(f"wrote {CHART.relative_to(ROOT)} from {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
