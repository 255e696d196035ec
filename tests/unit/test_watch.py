"""The page for watching one camera (/view/<camera>) and what /stats says about "no signal"."""

from __future__ import annotations

import time

from flask.testing import FlaskClient

from conftest import wait_until
from framewire.app import create_app
from framewire.config import ReceiverConfig
from framewire.frame import Frame
from framewire.signals import Events, signal
from framewire.transports import http as http_wire
from helpers import claiming, make_jpeg

JPEG = make_jpeg(320, 240, seed=3)


def post(client: FlaskClient, camera: str, seq: int, jpeg: bytes = JPEG) -> int:
    headers = http_wire.headers(Frame(camera, seq, time.time_ns(), jpeg))
    return client.post("/frames", data=jpeg, headers=headers).status_code


def test_signal_names_each_case() -> None:
    assert signal(has_frame=False, fresh=False) == "waiting"
    assert signal(has_frame=True, fresh=True) == "live"
    assert signal(has_frame=True, fresh=False) == "stale"


def test_events_count_by_reason_with_their_age() -> None:
    events = Events()
    assert events.stats() == {}
    events.add("too_many_pixels", now=100.0)
    events.add("too_many_pixels", 2, now=104.0)
    events.add("bad_token", now=101.0)
    assert events.stats(now=110.0) == {
        "bad_token": {"count": 1, "seconds_ago": 9.0},
        "too_many_pixels": {"count": 3, "seconds_ago": 6.0},
    }


def test_view_page_names_its_camera_and_links_the_comparison(client: FlaskClient) -> None:
    """A camera not seen yet has a page too: it waits for the first frame."""
    page = client.get("/view/door")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '"camera": "door"' in html and 'href="../#door"' in html
    assert 'id="fullscreen"' in html and 'id="stream-url"' in html and 'id="snapshot-url"' in html
    bad = client.get("/view/a..b%20c")
    assert bad.status_code == 404 and bad.json["error"] == "bad_camera"


def test_comparison_page_links_to_the_view(client: FlaskClient) -> None:
    assert post(client, "cam3", 1) == 204
    wait_until(lambda: "cam3" in client.get("/stats").json["cameras"], what="cam3 known")
    assert 'href="view/cam3"' in client.get("/").get_data(as_text=True)


def test_stats_say_waiting_live_stale_and_refused() -> None:
    app = create_app(ReceiverConfig(default_camera="door", stale_after=0.5))
    try:
        client = app.test_client()
        stats = client.get("/stats").json
        assert stats["cameras"]["door"]["signal"] == "waiting"
        assert stats["refused"] == {} and stats["receive_errors"] == {}
        assert post(client, "door", 1) == 204
        wait_until(
            lambda: client.get("/stats").json["cameras"]["door"]["signal"] == "live",
            what="door live",
        )
        wait_until(  # no frame for longer than --stale-after
            lambda: client.get("/stats").json["cameras"]["door"]["signal"] == "stale",
            what="door stale",
        )
        assert post(client, "door", 2, claiming(JPEG, 65000, 65000)) == 422
        refused = client.get("/stats").json["refused"]
        assert refused["too_many_pixels"]["count"] == 1
        assert refused["too_many_pixels"]["seconds_ago"] < 5
    finally:
        app.extensions["framewire.shutdown"]()
