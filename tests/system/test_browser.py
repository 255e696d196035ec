"""The comparison page in a real Chromium (Debian's `chromium`), driven by Playwright.

Both receivers run with real senders, each page comparing with the other
receiver: found by --peer-port at the browser's host name (the default way),
or at --peer-url (the override, e.g. behind a reverse proxy). The page never
finishes loading (MJPEG), so it is opened with `wait_until="commit"` and
every check waits on a condition in the page or on the servers' /metrics.
The main test saves docs/comparison.png when FRAMEWIRE_UPDATE_SCREENSHOT is
set.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from conftest import RedisServer, Service, Services, free_port, wait_until
from framewire_bench.readers import read_metrics, total
from helpers import decode, live

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The README's screenshot; rewritten only when asked, so `make test` leaves the tree clean.
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "comparison.png"
UPDATE_SCREENSHOT = bool(os.environ.get("FRAMEWIRE_UPDATE_SCREENSHOT"))
GRAFANA = "http://localhost:3000/"
SMALL = ("--width", "320", "--height", "240")
NO_FIGURE = "\u2013"  # the page's en dash for a missing figure
WAIT_MS = 20_000
# Every focus stream (read with fetch() and drawn to its canvas) has drawn a picture.
STREAMS_SHOWN = (
    "[...document.querySelectorAll('canvas.stream')].every(c => Number(c.dataset.frames) > 0)"
)


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, through Playwright (never `playwright install`)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium "
            "(apt-get install chromium fonts-liberation; `make test` does it)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -r requirements-dev.lock")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def start_stack(
    services: Services,
    redis_server: RedisServer,
    cameras: list[str],
    *sender_args: str,
    by_port: bool = False,
) -> tuple[Service, Service, dict[str, Service]]:
    """Redis receiver, HTTP receiver comparing with it, and one sender per camera.

    Each receiver's peer is the other, given by --peer-url, or with `by_port` by --peer-port
    only (a stream is readable cross-origin by its peer's page only).
    """
    http_port = free_port()  # known before the Redis receiver starts: it is that one's peer
    if by_port:
        red = services.receiver(
            "redis", "--redis-url", redis_server.url, "--peer-port", str(http_port)
        )
        red_port = red.url.rsplit(":", 1)[1]
        http = services.receiver(
            "http", "--peer-port", red_port, "--grafana-url", GRAFANA, port=http_port
        )
    else:
        http_url = f"http://127.0.0.1:{http_port}"
        red = services.receiver("redis", "--redis-url", redis_server.url, "--peer-url", http_url)
        http = services.receiver(
            "http", "--peer-url", red.url, "--grafana-url", GRAFANA, port=http_port
        )
    senders = {
        camera: services.sender(
            "--camera",
            camera,
            "--http-url",
            f"{http.url}/frames",
            "--redis-url",
            redis_server.url,
            *sender_args,
        )
        for camera in cameras
    }
    for receiver in (http, red):
        wait_until(
            lambda r=receiver: live(r, cameras), what=f"every camera live on {receiver.name}"
        )
    return http, red, senders


def viewers(receiver: Service, camera: str | None = None) -> float:
    """Open MJPEG streams on `receiver` (of one camera, or all)."""
    labels = {"camera": camera} if camera else {}
    return total(read_metrics(receiver.url), "framewire_viewers", **labels)


def open_page(chromium: Browser, url: str) -> Page:
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(WAIT_MS)
    page.goto(url, wait_until="commit")
    page.wait_for_function(STREAMS_SHOWN)
    return page


def assert_moving(page: Page, side: str) -> None:
    """Two screenshots of the side's stream a second apart differ."""
    stream = page.locator(f"[data-side={side}] canvas.stream")
    first = stream.screenshot()
    page.wait_for_timeout(1000)  # the one deliberate wait: let the picture move
    assert stream.screenshot() != first, f"the {side} stream did not change in a second"


def figures(page: Page, side: str) -> dict[str, str]:
    return page.evaluate(
        """side => {
            const panel = document.querySelector(`[data-side=${side}]`);
            const out = {state: panel.dataset.state};
            for (const dd of panel.querySelectorAll("dd")) out[dd.dataset.field] = dd.textContent;
            return out;
        }""",
        side,
    )


def wait_state(page: Page, side: str, state: str) -> None:
    page.wait_for_function(
        "([side, state]) => document.querySelector(`[data-side=${side}]`).dataset.state === state",
        arg=[side, state],
    )


def wait_figures_change(page: Page, side: str) -> dict[str, str]:
    """The side's figures once they differ from now (they update about once a second)."""
    before = figures(page, side)
    page.wait_for_function(
        """([side, seq]) => document.querySelector(
            `[data-side=${side}] [data-field=seq]`).textContent !== seq""",
        arg=[side, before["seq"]],
    )
    return figures(page, side)


def assert_display_latency(page: Page, side: str) -> float:
    """The side shows a capture-to-display latency between its served latency and a second."""
    page.wait_for_function(
        "side => document.querySelector(`[data-side=${side}] [data-field=display]`)"
        ".textContent.endsWith(' ms')",
        arg=side,
    )
    shown = wait_figures_change(page, side)  # served and display figures of one moment
    assert ms(shown["p50"]) < ms(shown["display"]) < 1000, shown
    return ms(shown["display"])


def ms(text: str) -> float:
    assert text.endswith(" ms"), text
    return float(text.removesuffix(" ms"))


PEER_BASES = {  # (peer_url, peer_port, the page's location): the peer's base URL
    ("", 8002, "http://[::1]:8001/"): "http://[::1]:8002/",
    ("", 8002, "https://cams.example:8001/#cam1"): "https://cams.example:8002/",
    ("", 8001, "http://192.0.2.7:8002/"): "http://192.0.2.7:8001/",
    ("https://proxy.example/redis", 0, "https://proxy.example/http/"): (
        "https://proxy.example/redis/"
    ),
    ("", 0, "http://[::1]:8001/"): "",
}


def assert_peer_base_rule(page: Page) -> None:
    """The page's own rule (peerBase) for other locations: IPv6 literals stay bracketed."""
    for (peer_url, peer_port, location), expected in PEER_BASES.items():
        got = page.evaluate(
            "([u, p, l]) => peerBase({peer_url: u, peer_port: p}, new URL(l))",
            [peer_url, peer_port, location],
        )
        assert got == expected, (peer_url, peer_port, location)


def test_comparison_page_in_chromium(
    services: Services, redis_server: RedisServer, browser: Browser
) -> None:
    """The HTTP receiver given its peer by --peer-url (the override)."""
    http, red, senders = start_stack(
        services, redis_server, ["cam0", "cam1"], "--width", "640", "--height", "360"
    )
    page = open_page(browser, f"{http.url}/")
    for side in ("own", "peer"):
        assert_moving(page, side)
        wait_state(page, side, "live")
        shown = wait_figures_change(page, side)
        assert float(shown["fps"]) > 0, shown
        assert 0 < ms(shown["p50"]) <= ms(shown["p95"]), shown
        assert_display_latency(page, side)
        assert (
            page.evaluate(  # the picture drawn is the stream's newest (within a second)
                "side => Number(document.querySelector(`[data-side=${side}] canvas.stream`)"
                ".dataset.seq)",
                side,
            )
            > int(shown["seq"]) - 30
        )
    assert page.locator("[data-side=peer] .transport").inner_text() == "REDIS"
    assert page.locator("[data-side=peer] .origin").inner_text() == red.url
    assert page.locator("#grafana").get_attribute("href") == GRAFANA
    # Every camera live on the grid (this receiver's /grid.mjpg), one caption per camera.
    page.wait_for_function("document.getElementById('grid-live').naturalWidth > 1")
    page.wait_for_function("document.querySelectorAll('#grid .tile').length === 2")
    shot = page.screenshot(full_page=True)
    assert shot.startswith(b"\x89PNG")
    if UPDATE_SCREENSHOT:
        SCREENSHOT.write_bytes(shot)
    for receiver in (http, red):
        wait_until(lambda r=receiver: viewers(r) == viewers(r, "cam0") == 1, what="one stream")

    page.locator(".tile[data-camera=cam1]").click()  # the stream moves to cam1
    page.wait_for_function("document.getElementById('focus-name').textContent === 'cam1'")
    page.wait_for_function(STREAMS_SHOWN)
    for receiver in (http, red):
        wait_until(
            lambda r=receiver: viewers(r, "cam0") == 0 and viewers(r, "cam1") == 1,
            what=f"the stream on {receiver.name} to move from cam0 to cam1",
        )

    senders["cam1"].stop()
    for side in ("own", "peer"):
        wait_state(page, side, "no signal")
        assert "no signal" in page.locator(f"[data-side={side}] .notice").inner_text()
    assert page.locator(".tile[data-camera=cam1] .dot").first.get_attribute("data-state") == (
        "no signal"
    )

    page.close()
    for receiver in (http, red):
        wait_until(lambda r=receiver: viewers(r) == 0, what=f"{receiver.name} streams released")


def test_page_waits_for_the_first_camera_and_makes_none_up(
    services: Services, redis_server: RedisServer, browser: Browser
) -> None:
    """Nothing sends yet: no stream, no tile, a notice. The first camera to appear is shown,
    and no cam0 is ever made up (a tile only for a camera someone sends)."""
    http, red, _ = start_stack(services, redis_server, [], by_port=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{http.url}/", wait_until="commit")
    page.wait_for_function("Number(document.body.dataset.ticks) >= 2")
    assert page.locator("#focus-name").inner_text() == ""
    assert page.locator("#grid .tile").count() == 0
    assert "waiting for a camera" in page.locator("[data-side=own] .notice").inner_text()
    assert viewers(http) == 0
    services.sender(
        "--camera",
        "door",
        "--http-url",
        f"{http.url}/frames",
        "--redis-url",
        redis_server.url,
        *SMALL,
    )
    page.wait_for_function("document.getElementById('focus-name').textContent === 'door'")
    page.wait_for_function(STREAMS_SHOWN)
    assert page.evaluate(
        "[...document.querySelectorAll('#grid .tile')].map(t => t.dataset.camera)"
    ) == ["door"]
    for receiver in (http, red):
        wait_until(lambda r=receiver: viewers(r, "door") == 1, what=f"door on {receiver.name}")
    page.close()


def test_each_page_finds_its_peer_by_port_with_no_url(
    services: Services, redis_server: RedisServer, browser: Browser
) -> None:
    """No --peer-url: the page looks for the other receiver at its own host name, on --peer-port."""
    http, red, _ = start_stack(services, redis_server, ["cam0"], *SMALL, by_port=True)
    http_port, red_port = (r.url.rsplit(":", 1)[1] for r in (http, red))
    # Opened as localhost, the HTTP receiver's page must look for its peer at localhost too.
    for url, peer_url, peer_transport in (
        (f"http://localhost:{http_port}/", f"http://localhost:{red_port}", "REDIS"),
        (f"{red.url}/", http.url, "HTTP"),
    ):
        page = open_page(browser, url)
        for side in ("own", "peer"):
            wait_state(page, side, "live")
        shown = wait_figures_change(page, "peer")
        assert float(shown["fps"]) > 0, shown
        assert_moving(page, "peer")
        assert page.locator("[data-side=peer] .transport").inner_text() == peer_transport
        assert page.locator("[data-side=peer] .origin").inner_text() == peer_url
        assert page.locator("#peer-hint").is_hidden()
        assert_peer_base_rule(page)
        page.close()
    for receiver in (http, red):
        wait_until(lambda r=receiver: viewers(r) == 0, what=f"{receiver.name} streams released")


def test_page_keeps_working_while_the_peer_is_down(
    services: Services, redis_server: RedisServer, browser: Browser
) -> None:
    """The peer found by --peer-port goes away and comes back on the same port."""
    http, red, _ = start_stack(
        services, redis_server, ["cam0"], "--width", "320", "--height", "240", by_port=True
    )
    page = open_page(browser, f"{http.url}/")
    wait_state(page, "peer", "live")
    red.stop()
    wait_state(page, "peer", "unreachable")
    assert "unreachable" in page.locator("[data-side=peer] .notice").inner_text()
    assert "--peer-url" in page.locator("#peer-hint").inner_text()  # shown while unreachable
    assert figures(page, "peer")["fps"] == NO_FIGURE
    wait_state(page, "own", "live")
    wait_figures_change(page, "own")
    assert_moving(page, "own")

    port = int(red.url.rsplit(":", 1)[1])
    http_port = http.url.rsplit(":", 1)[1]
    red = services.receiver(
        "redis", "--redis-url", redis_server.url, "--peer-port", http_port, port=port
    )
    wait_state(page, "peer", "live")  # /stats answers again and the stream is reopened
    page.wait_for_function(STREAMS_SHOWN)
    assert_moving(page, "peer")
    assert page.locator("#peer-hint").is_hidden()
    page.close()
    for receiver in (http, red):
        wait_until(lambda r=receiver: viewers(r) == 0, what=f"{receiver.name} streams released")


def assert_live_grid(page: Page, cameras: list[str]) -> None:
    """Every camera's tile on the receiver's /grid.mjpg moves between two screenshots, and a
    click on a camera's tile focuses that camera."""
    grid = page.locator("#grid-live")
    page.wait_for_function("document.getElementById('grid-live').naturalWidth > 1")
    first = grid.screenshot()
    page.wait_for_timeout(1000)  # as in assert_moving: let the mosaic move
    second = grid.screenshot()
    columns = page.evaluate("grid.columns") or math.ceil(math.sqrt(len(cameras)))
    rows = math.ceil(len(cameras) / columns)
    box = grid.bounding_box()
    assert box is not None
    natural = page.evaluate("[grid.img.naturalWidth, grid.img.naturalHeight]")
    scale = min(box["width"] / natural[0], box["height"] / natural[1])
    tile_w, tile_h = natural[0] * scale / columns, natural[1] * scale / rows
    left = (box["width"] - natural[0] * scale) / 2
    top = (box["height"] - natural[1] * scale) / 2

    def centre(index: int) -> tuple[float, float]:
        return left + (index % columns + 0.5) * tile_w, top + (index // columns + 0.5) * tile_h

    pictures = [decode(shot) for shot in (first, second)]
    ratio = pictures[0].shape[1] / box["width"]  # screenshot pixels per CSS pixel
    for index, camera in enumerate(cameras):
        x, y = centre(index)
        x0, x1 = int((x - tile_w * 0.4) * ratio), int((x + tile_w * 0.4) * ratio)
        y0, y1 = int((y - tile_h * 0.4) * ratio), int((y + tile_h * 0.4) * ratio)
        before, after = (p[y0:y1, x0:x1] for p in pictures)
        assert before.size and not (before == after).all(), f"{camera}'s tile did not change"
    x, y = centre(len(cameras) - 1)  # the last camera's tile
    grid.click(position={"x": x, "y": y})
    page.wait_for_function(
        "name => document.getElementById('focus-name').textContent === name", arg=cameras[-1]
    )
    page.evaluate("location.hash = 'cam0'")
    page.wait_for_function("document.getElementById('focus-name').textContent === 'cam0'")
    page.wait_for_function(STREAMS_SHOWN)


GRID_CELLS = [  # (x, y, box, picture, cameras, columns) -> the camera's index, -1 for none
    ((10, 10, (200, 100), (200, 100), 4, 0), 0),
    ((150, 10, (200, 100), (200, 100), 4, 0), 1),
    ((150, 90, (200, 100), (200, 100), 4, 0), 3),
    ((150, 90, (200, 100), (200, 100), 3, 0), -1),  # the empty fourth place of a 2x2 mosaic
    ((5, 20, (300, 100), (200, 100), 4, 0), -1),  # in the letterbox left of the picture
    ((60, 20, (300, 100), (200, 100), 4, 0), 0),  # the picture starts at x = 50
    ((150, 90, (300, 100), (300, 100), 5, 0), 4),  # 5 cameras: 3 columns, 2 rows
    ((290, 10, (300, 100), (300, 100), 16, 0), 3),  # 16 cameras: 4 columns
    ((290, 10, (300, 100), (300, 100), 16, 8), 7),  # 8 columns given
    ((290, 90, (300, 100), (300, 100), 5, 0), -1),  # the empty sixth place
]


def assert_grid_rules(page: Page) -> None:
    """The page's rule for the grid: the tile a click lands on."""
    for (x, y, box, picture, count, columns), expected in GRID_CELLS:
        got = page.evaluate(
            "([x, y, b, p, n, c]) => gridCell(x, y, {width: b[0], height: b[1]},"
            " {width: p[0], height: p[1]}, n, c)",
            [x, y, box, picture, count, columns],
        )
        assert got == expected, (x, y, box, picture, count, columns)


def stream_sources(page: Page) -> list[str]:
    return page.evaluate("[...document.querySelectorAll('canvas.stream')].map(c => c.dataset.src)")


def test_variant_selector_hidden_tab_and_grid_rules(
    services: Services, redis_server: RedisServer, browser: Browser
) -> None:
    """The variant moves both focus streams to width=640&fps=10, and is remembered."""
    http, red, _ = start_stack(services, redis_server, ["cam0"], *SMALL)
    page = open_page(browser, f"{http.url}/")
    assert_grid_rules(page)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.select_option("#variant", label="640 px 10 fps")
    page.wait_for_function(
        "[...document.querySelectorAll('canvas.stream')]"
        ".every(c => c.dataset.src.includes('?width=640&fps=10&'))"
    )
    page.wait_for_function(STREAMS_SHOWN)
    for receiver in (http, red):
        prefix = f"{receiver.url}/stream/cam0.mjpg?width=640&fps=10&t="
        assert any(url.startswith(prefix) for url in requested), (prefix, requested)
        wait_until(
            lambda r=receiver: viewers(r) == 1, what=f"{receiver.name}: the old stream closed"
        )

    page.reload(wait_until="commit")  # remembered by this browser
    page.wait_for_function(STREAMS_SHOWN)
    assert page.eval_on_selector("#variant", "s => s.value") == "width=640&fps=10"
    assert all("?width=640&fps=10&" in src for src in stream_sources(page))

    # A hidden tab holds no stream (the fetch() is aborted); shown again, both reopen.
    page.evaluate(
        """hidden => {
            Object.defineProperty(document, "hidden", {configurable: true, get: () => hidden});
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        True,
    )
    for receiver in (http, red):
        wait_until(lambda r=receiver: viewers(r) == 0, what=f"{receiver.name} streams released")
    page.evaluate(
        """hidden => {
            Object.defineProperty(document, "hidden", {configurable: true, get: () => hidden});
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        False,
    )
    page.wait_for_function(STREAMS_SHOWN)
    for receiver in (http, red):
        wait_until(lambda r=receiver: viewers(r) == 1, what=f"{receiver.name} stream reopened")

    page.select_option("#variant", label="full")
    page.wait_for_function(
        "[...document.querySelectorAll('canvas.stream')]"
        ".every(c => !c.dataset.src.includes('width='))"
    )
    page.wait_for_function(STREAMS_SHOWN)
    page.close()
    for receiver in (http, red):
        wait_until(lambda r=receiver: viewers(r) == 0, what=f"{receiver.name} streams released")


def test_eight_cameras_live_within_the_connection_limit(
    services: Services, redis_server: RedisServer, browser: Browser
) -> None:
    """One live stream per receiver, and every camera's tile moves on the one live grid."""
    cameras = [f"cam{n}" for n in range(8)]
    http, red, _ = start_stack(services, redis_server, cameras, *SMALL, "--fps", "10")
    page = open_page(browser, f"{http.url}/")
    page.wait_for_function("document.getElementById('grid').dataset.mode !== 'probing'")
    assert page.evaluate("document.getElementById('grid').dataset.mode") == "live"
    assert_live_grid(page, cameras)
    ticks = int(page.evaluate("document.body.dataset.ticks"))
    page.wait_for_function(f"Number(document.body.dataset.ticks) >= {ticks + 2}")
    for side in ("own", "peer"):
        wait_state(page, side, "live")
        assert_moving(page, side)
    for receiver in (http, red):
        for camera in cameras:  # only the camera in focus streams
            assert viewers(receiver, camera) == (camera == "cam0"), (receiver.name, camera)
    page.locator(".tile[data-camera=cam3]").click()
    for receiver in (http, red):
        wait_until(
            lambda r=receiver: viewers(r) == viewers(r, "cam3") == 1,
            what=f"{receiver.name} streaming cam3 alone",
        )
    page.close()
    for receiver in (http, red):
        wait_until(lambda r=receiver: viewers(r) == 0, what=f"{receiver.name} streams released")
