"""The page for watching one camera (/view/<camera>) in a real Chromium, driven by Playwright.

An HTTP receiver with a real sender: the page waits for the camera's first
frame, shows its stream, gives the stream and snapshot URLs to copy (absolute,
and they answer), goes fullscreen, and says why there is no signal: waiting
before the first frame, stopped once the sender is killed, and the reason of
refused frames. Every check waits on a condition in the page, never a sleep.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests

import test_browser
from conftest import Services
from helpers import claiming, make_jpeg, post_frame

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

browser = test_browser.browser  # Debian's Chromium, headless, as the comparison page's tests
SCREENSHOT = test_browser.SCREENSHOT.with_name("watch.png")
SIGNAL = "signal => document.body.dataset.signal === signal"


def notice(page: Page) -> str:
    return page.locator("#notice").inner_text()


def test_watch_page_in_chromium(services: Services, browser: Browser) -> None:
    http = services.receiver("http", "--stale-after", "1")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=http.url)
    page = context.new_page()
    page.set_default_timeout(test_browser.WAIT_MS)
    page.goto(f"{http.url}/view/door", wait_until="commit")

    # Nothing sends yet: the page waits, and says so.
    page.wait_for_function(SIGNAL, arg="waiting")
    assert notice(page).startswith("no signal: waiting, no frame yet")
    assert page.locator("#stream").is_hidden()

    # A refused frame (it names no camera slot) is named on the page with its reason.
    assert post_frame(http.url, "door", claiming(make_jpeg(), 65000, 65000)).status_code == 422
    page.wait_for_function("document.getElementById('notice').textContent.includes('refused')")
    assert "frames refused: too_many_pixels (1)" in notice(page)

    sender = services.sender(
        "--camera", "door", "--http-url", f"{http.url}/frames", *test_browser.SMALL
    )
    page.wait_for_function(SIGNAL, arg="live")
    page.wait_for_function("document.getElementById('stream').naturalWidth > 0")
    assert page.locator("#notice").is_hidden()
    if test_browser.UPDATE_SCREENSHOT:  # the docs' picture of this page
        SCREENSHOT.write_bytes(page.screenshot())

    # The URLs to copy: absolute, from the page's own address, and they answer.
    urls = {
        "stream-url": f"{http.url}/stream/door.mjpg",
        "snapshot-url": f"{http.url}/snapshot/door.jpg",
    }
    for field, url in urls.items():
        assert page.locator(f"#{field}").input_value() == url
        with requests.get(url, stream=True, timeout=10) as response:
            assert response.status_code == 200, url
        page.locator(f"[data-copy={field}]").click()
        page.wait_for_function(
            "url => navigator.clipboard.readText().then((text) => text === url)", arg=url
        )
    assert page.evaluate("document.getElementById('compare').href") == f"{http.url}/#door"

    # Fullscreen: the Fullscreen API on the picture's container, from a click.
    page.locator("#fullscreen").click()
    page.wait_for_function("document.fullscreenElement?.id === 'screen'")
    # The button follows the fullscreenchange event, which may come a moment after.
    page.wait_for_function("document.getElementById('fullscreen').innerText === 'exit fullscreen'")
    page.locator("#fullscreen").click()
    page.wait_for_function("document.fullscreenElement === null")

    # The sender is killed: the picture stops, the page says so.
    sender.kill()
    page.wait_for_function(SIGNAL, arg="stale")
    assert notice(page).startswith("no signal: stopped, last frame")
    context.close()


def test_comparison_page_links_each_camera_to_its_view(
    services: Services, browser: Browser
) -> None:
    http = services.receiver("http", "--peer-port", "0")
    services.sender("--camera", "cam2", "--http-url", f"{http.url}/frames", *test_browser.SMALL)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(test_browser.WAIT_MS)
    page.goto(f"{http.url}/", wait_until="commit")
    page.wait_for_function("document.querySelectorAll('#grid .tile').length === 1")
    assert page.locator("#watch-link").get_attribute("href") == "view/cam2"
    page.locator(".tile-cell .watch").click()
    page.wait_for_url(f"{http.url}/view/cam2")
    page.wait_for_function(SIGNAL, arg="live")
    page.close()
